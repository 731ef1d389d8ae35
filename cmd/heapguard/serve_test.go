package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/internal/promtest"
	"github.com/heapguard/heapguard/metrics"
	"github.com/heapguard/heapguard/remediate"
)

// inetdAnswer feeds req to serveOne as inetd would hand a connection over
// and parses the answer; never is a timeout channel that does not fire.
func inetdAnswer(t *testing.T, h http.Handler, req string) (*http.Response, string) {
	t.Helper()
	var out bytes.Buffer
	if err := serveOne(context.Background(), h, strings.NewReader(req), &out, nil); err != nil {
		t.Fatalf("serveOne(%q): %v", req, err)
	}
	return parseAnswer(t, out.Bytes(), req)
}

func parseAnswer(t *testing.T, raw []byte, req string) (*http.Response, string) {
	t.Helper()
	method := http.MethodGet
	if strings.HasPrefix(req, "HEAD ") {
		method = http.MethodHead
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("answer to %q is not HTTP: %v\n%q", req, err, raw)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("answer to %q: body: %v", req, err)
	}
	if !resp.Close {
		t.Errorf("answer to %q does not close the connection", req)
	}
	return resp, string(body)
}

// serveState is a state folder with a journal of three entries, an hour
// apart, one line of them damaged.
func serveState(t *testing.T) (agent.Options, string) {
	t.Helper()
	state := t.TempDir()
	j, err := remediate.OpenJournal(state, host.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	for i, target := range []string{"DSVA01", "DSVA03", "DSVA\"04\n$(reboot)"} {
		e := remediate.Entry{
			Time:   time.Date(2014, 6, 10, 6+i, 0, 0, 0, time.UTC).Format(time.RFC3339Nano),
			Action: "power_off", Target: target, Result: "dry_run", DryRun: true,
		}
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	f, err := os.OpenFile(filepath.Join(state, remediate.JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("{\"time\": torn\n")
	f.Close()
	return agent.Options{StateDir: state, Root: t.TempDir()}, state
}

// TestServeInetdAnswers: each path, method and malformed request gets its
// own answer, whole, with its length, closing the connection.
func TestServeInetdAnswers(t *testing.T) {
	opt, _ := serveState(t)
	h := newServeHandler(opt, agent.StatusOptions{})
	for _, c := range []struct {
		req, want string
		code      int
	}{
		{"GET /healthz HTTP/1.1\r\nHost: esx01\r\n\r\n", "ok\n", 200},
		{"GET /healthz HTTP/1.0\r\n\r\n", "ok\n", 200},
		{"HEAD /healthz HTTP/1.1\r\nHost: esx01\r\n\r\n", "", 200},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET /metrics", 200},
		{"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", "404 page not found", 404},
		{"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "Method Not Allowed", 405},
		{"DELETE /journal HTTP/1.1\r\nHost: x\r\n\r\n", "Method Not Allowed", 405},
		{"GET //healthz HTTP/1.1\r\nHost: x\r\n\r\n", "404 page not found", 404}, // never a redirect
		{"GET /healthz/ HTTP/1.1\r\nHost: x\r\n\r\n", "404 page not found", 404},
		{"GET A: HTTP/1.1\r\nHost: x\r\n\r\n", "the request target must be a path", 400},
		{"\x00\x01\x02\xff\xfe garbage\r\n\r\n", "not an HTTP/1.x request", 400},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", 0}, // any 4xx
		{"GET /healthz HTTP/1.1\r\nHost: x\r\n", "incomplete request", 400},
		{"", "incomplete request", 400},
		{"GET /healthz HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n", "over 8 KiB", 431},
		{"GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\n\r\n", "over 8 KiB", 431},
	} {
		resp, body := inetdAnswer(t, h, c.req)
		name := c.req[:min(len(c.req), 30)]
		if c.code == 0 {
			if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Errorf("%q: status %d, want a 4xx", name, resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%q: status %d body %q, want %d with %q", name, resp.StatusCode, body, c.code, c.want)
		}
		if c.code == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%q: 405 without Allow", name)
		}
		if strings.HasPrefix(c.req, "HEAD ") && resp.ContentLength != 3 {
			t.Errorf("HEAD: Content-Length %d, want the GET body's 3", resp.ContentLength)
		}
	}
}

// TestServeInetdTimeout: a client that sends half a request is answered
// 408 when the timeout fires, without waiting for its next byte.
func TestServeInetdTimeout(t *testing.T) {
	opt, _ := serveState(t)
	h := newServeHandler(opt, agent.StatusOptions{})
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")) // never the blank line
	fire := make(chan time.Time)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- serveOne(context.Background(), h, pr, &out, fire) }()
	select {
	case err := <-done:
		t.Fatalf("answered before the timeout: %v %q", err, out.String())
	default:
	}
	close(fire)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	resp, body := parseAnswer(t, out.Bytes(), "GET")
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "within 5 s") {
		t.Errorf("status %d body %q, want 408", resp.StatusCode, body)
	}
}

// TestServeJournal: /journal serves the entries from since= on, as JSON
// lines that decode to the journal's entries; damaged lines are counted,
// never served; a bad since is a 400.
func TestServeJournal(t *testing.T) {
	opt, _ := serveState(t)
	h := newServeHandler(opt, agent.StatusOptions{})
	decode := func(body string) []remediate.Entry {
		var es []remediate.Entry
		dec := json.NewDecoder(strings.NewReader(body))
		for {
			var e remediate.Entry
			if err := dec.Decode(&e); errors.Is(err, io.EOF) {
				return es
			} else if err != nil {
				t.Fatalf("journal answer is not JSON lines: %v\n%s", err, body)
			}
			es = append(es, e)
		}
	}
	resp, body := inetdAnswer(t, h, "GET /journal HTTP/1.1\r\nHost: x\r\n\r\n")
	all := decode(body)
	if resp.StatusCode != 200 || len(all) != 3 || all[2].Target != "DSVA\"04\n$(reboot)" || resp.Header.Get("X-Heapguard-Damaged-Lines") != "1" ||
		strings.Count(body, "\n") != 3 {
		t.Errorf("all: status %d, %d entries %+v, header %v", resp.StatusCode, len(all), all, resp.Header)
	}
	_, body = inetdAnswer(t, h, "GET /journal?since=2014-06-10T07:00:00Z HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := decode(body); len(got) != 2 || got[0].Target != "DSVA03" {
		t.Errorf("since 07:00: %+v, want DSVA03 and the third", got)
	}
	// The same lines, byte for byte, as journal --json prints.
	_, jout, _ := runCLI(t, "journal", "--json", "--state-dir", opt.StateDir, "--since", "2014-06-10T07:00:00Z")
	if body != jout {
		t.Errorf("/journal and journal --json differ:\n%s\n%s", body, jout)
	}
	resp, body = inetdAnswer(t, h, "GET /journal?since=yesterday HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(body, "since=") {
		t.Errorf("bad since: %d %q", resp.StatusCode, body)
	}
	empty := newServeHandler(agent.Options{StateDir: t.TempDir()}, agent.StatusOptions{})
	if resp, body := inetdAnswer(t, empty, "GET /journal HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "" {
		t.Errorf("no journal yet: %d %q, want 200 and nothing", resp.StatusCode, body)
	}
}

// TestServeStatusReadOnly: /status is status --json (the seed incident at
// 100 simulated minutes, after three checks), /report is the report's
// page, and serving them, the journal and the health check changes nothing
// in the state folder or on the host.
func TestServeStatusReadOnly(t *testing.T) {
	h, state := threeChecks(t)
	before := treeSnapshot(t, state, h.Root())
	_, want := statusJSON(t, "--root", h.Root(), "--state-dir", state)
	var reqs bytes.Buffer
	for _, p := range []string{"/status", "/journal", "/healthz", "/report"} {
		reqs.Reset()
		reqs.WriteString("GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n")
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"serve", "--inetd", "--root", h.Root(), "--state-dir", state}, &reqs, &out, &errb)
		resp, body := parseAnswer(t, out.Bytes(), "GET")
		if code != exitOK || resp.StatusCode != 200 || errb.Len() > 0 {
			t.Fatalf("%s: exit %d, status %d, stderr %q", p, code, resp.StatusCode, errb.String())
		}
		if p == "/report" && (resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, "<svg") ||
			!strings.Contains(body, "DSVA03 (0x3000007)")) {
			t.Errorf("/report: %s, %d bytes, no chart with DSVA03's port", resp.Header.Get("Content-Type"), len(body))
		}
		if p == "/status" {
			var got agent.Status
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got.Nagios != want.Nagios || len(got.Flapping) != 3 || got.Saved.AgeSeconds != want.Saved.AgeSeconds {
				t.Errorf("/status %q (%d flapping), status --json %q", got.Nagios, len(got.Flapping), want.Nagios)
			}
		}
	}
	diffSnapshots(t, before, treeSnapshot(t, state, h.Root()))
}

// TestServeInetdSilentOnStderr: under inetd standard error is the
// client's connection; even a bad configuration writes nothing there, and
// the answer says what is wrong.
func TestServeInetdSilentOnStderr(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--inetd", "--config", filepath.Join(t.TempDir(), "missing.conf")},
		strings.NewReader("GET /healthz HTTP/1.1\r\n\r\n"), &out, &errb)
	if code != exitUnknown || errb.Len() > 0 {
		t.Errorf("exit %d, stderr %q: want 3 and nothing on stderr", code, errb.String())
	}
	// The client is told why, on the connection.
	if resp, body := parseAnswer(t, out.Bytes(), "GET"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "missing.conf") {
		t.Errorf("answer %d %q, want 503 naming the config file", resp.StatusCode, body)
	}
}

// TestServeInetdProcess: the real binary under inetd's convention, the
// connection as standard input, output and error (a socket pair): one
// answer, then exit; a client that never completes its request is
// answered 408 and the process exits within the 5 s limit.
func TestServeInetdProcess(t *testing.T) {
	bin := heapguardBin(t)
	opt, _ := serveState(t)
	conn := func(req string, hold bool) (string, time.Duration) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		srv, cli := os.NewFile(uintptr(fds[0]), "server"), os.NewFile(uintptr(fds[1]), "client")
		defer cli.Close()
		cmd := exec.Command(bin, "serve", "--inetd", "--state-dir", opt.StateDir, "--root", opt.Root)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = srv, srv, srv
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		cli.WriteString(req)
		if !hold {
			syscall.Shutdown(fds[1], syscall.SHUT_WR)
		}
		answer, _ := io.ReadAll(cli)
		cmd.Wait()
		return string(answer), time.Since(start)
	}
	if got, _ := conn("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", false); !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\nok\n") {
		t.Errorf("answer %q", got)
	}
	if testing.Short() {
		return
	}
	got, took := conn("GET /healthz HTTP/1.1\r\n", true)
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") || took > 8*time.Second {
		t.Errorf("half a request: answer %q after %v, want 408 within about 5 s", got, took)
	}
}

// TestServeListen: resident on loopback, answering until the context
// ends, then shutting down cleanly; a remote address needs the flag.
func TestServeListen(t *testing.T) {
	opt, _ := serveState(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveListener(ctx, newServeHandler(opt, agent.StatusOptions{}), ln) }()
	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, url+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 9000))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("9000-byte header: %v %v, want 431", resp, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still answering after shutdown")
	}

	for addr, allowed := range map[string]bool{"127.0.0.1:9731": true, "[::1]:9731": true, "localhost:9731": true, "0.0.0.0:9731": false, "10.0.0.5:9731": false, ":9731": false} {
		if err := checkListenAddr(addr, false); (err == nil) != allowed {
			t.Errorf("%s without --allow-remote: %v", addr, err)
		}
		if err := checkListenAddr(addr, true); err != nil {
			t.Errorf("%s with --allow-remote: %v", addr, err)
		}
	}
	if code, _, stderr := runCLI(t, "serve", "--listen", "0.0.0.0:0"); code != exitUnknown || !strings.Contains(stderr, "--allow-remote") {
		t.Errorf("serve --listen 0.0.0.0:0: exit %d, %s", code, stderr)
	}
}

// FuzzServeOne: whatever a client sends, the answer is one well-formed
// HTTP response with a status serve gives, and no panic.
func FuzzServeOne(f *testing.F) {
	for _, s := range []string{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD / HTTP/1.0\r\n\r\n", "GET /journal?since=2014-06-10T07:00:00Z HTTP/1.1\r\n\r\n",
		"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "\x16\x03\x01\x02\x00\x01", "GET /%zz HTTP/1.1\r\n\r\n"} {
		f.Add([]byte(s))
	}
	opt := agent.Options{StateDir: f.TempDir(), Root: f.TempDir()}
	h := newServeHandler(opt, agent.StatusOptions{})
	f.Fuzz(func(t *testing.T, req []byte) {
		if bytes.Contains(req, []byte("/status")) || bytes.Contains(req, []byte("/report")) {
			return // these run host commands or read logs: tested above
		}
		var out bytes.Buffer
		if err := serveOne(context.Background(), h, bytes.NewReader(req), &out, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(&out), nil)
		if err != nil {
			t.Fatalf("answer is not HTTP: %v", err)
		}
		switch resp.StatusCode {
		case 200, 400, 404, 405, 431:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

// TestServeConcurrencyLimit: with two heavy answers under way, a third is
// answered 503 at once; once one ends, the next is served.
func TestServeConcurrencyLimit(t *testing.T) {
	limit := concurrencyLimit(2)
	entered, release := make(chan struct{}), make(chan struct{})
	h := limit(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	call := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
		return rec
	}
	results := make(chan *httptest.ResponseRecorder, 2)
	for range 2 {
		go func() { results <- call() }()
		<-entered
	}
	if rec := call(); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("third at once: %d %q, want 503 with Retry-After", rec.Code, rec.Body)
	}
	release <- struct{}{}
	if rec := <-results; rec.Code != 200 || rec.Body.String() != "done" {
		t.Errorf("first: %d %q", rec.Code, rec.Body)
	}
	go func() { results <- call() }()
	<-entered // a slot was free again
	release <- struct{}{}
	release <- struct{}{}
	for range 2 {
		if rec := <-results; rec.Code != 200 {
			t.Errorf("after a slot freed: %d", rec.Code)
		}
	}
}

// TestServeMetrics: /metrics serves what the last check saved, the same
// series the textfile holds, clean under promtool; --dry-run serves the
// dry runs' file; a state folder without one still answers, with the
// scrape error and build_info.
func TestServeMetrics(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(110 * time.Minute)
	state, textDir := t.TempDir(), t.TempDir()
	if code, out, stderr := runCLI(t, "check", "--dry-run", "--root", h.Root(), "--state-dir", state, "--textfile", textDir,
		"--power-off-allow", "DSVA*", "--hold-polls", "1"); code != exitCritical {
		t.Fatalf("check: exit %d, %s %s", code, out, stderr)
	}
	scrape := func(extra ...string) (series, []byte) {
		t.Helper()
		var out, errb bytes.Buffer
		args := append([]string{"serve", "--inetd", "--root", h.Root(), "--state-dir", state}, extra...)
		req := strings.NewReader("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		if code := run(context.Background(), args, req, &out, &errb); code != exitOK || errb.Len() > 0 {
			t.Fatalf("serve %v: exit %d, stderr %q", extra, code, errb.String())
		}
		resp, body := parseAnswer(t, out.Bytes(), "GET")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("serve %v: %d %s", extra, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return parseProm(t, []byte(body)), []byte(body)
	}
	served, body := scrape("--dry-run")
	file, _ := readProm(t, filepath.Join(textDir, metrics.TextfileName))
	for k, v := range file {
		if w, ok := served[k]; !ok || w != v {
			t.Errorf("%s: textfile %v, served %v (present %v)", k, v, w, ok)
		}
	}
	if got := served.find("heapguard_port_flapping", map[string]string{"vm": "DSVA03", "port": "0x3000007"}); sum(got) != 1 {
		t.Errorf("DSVA03's port flapping: %v", got)
	}
	if got := served.find("heapguard_actions_total", map[string]string{"action": "power_off", "result": "dry_run"}); sum(got) != 3 {
		t.Errorf("dry-run power-offs: %v, want 3", got)
	}
	if got := served.find("heapguard_snapshot_age_seconds", nil); len(got) != 1 || sum(got) != 0 {
		t.Errorf("snapshot age on the host's clock: %v, want 0", got)
	}
	live, _ := scrape()
	if got := live.find("heapguard_scrape_errors", map[string]string{"source": "metrics"}); sum(got) != 1 ||
		len(live.find("heapguard_build_info", nil)) != 1 || len(live.find("heapguard_port_flapping", nil)) != 0 {
		t.Errorf("no live metrics yet: %v", live)
	}
	promtest.Check(t, body) // last: it skips without promtool, locally
}

// TestServeInetdPeers: under inetd, other hosts are answered only with
// --allow-remote, as --listen's rule says; loopback and unix sockets are
// this host.
func TestServeInetdPeers(t *testing.T) {
	for _, c := range []struct {
		peer        net.Addr
		allowRemote bool
		want        bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5000}, false, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 5000}, false, true},
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 5000}, false, false},
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 5000}, true, true},
		{&net.UnixAddr{Name: "@", Net: "unix"}, false, true},
	} {
		if got := peerAllowed(c.peer, c.allowRemote); got != c.want {
			t.Errorf("%v, --allow-remote %v: allowed %v, want %v", c.peer, c.allowRemote, got, c.want)
		}
	}
	// The peer of a real TCP connection handed over as standard input.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := srv.(*net.TCPConn).File()
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	peer, ok := inetdPeer(f)
	if !ok || peer.String() != cli.LocalAddr().String() {
		t.Errorf("peer of the handed-over socket: %v %v, want %v", peer, ok, cli.LocalAddr())
	}
	if _, ok := inetdPeer(strings.NewReader("GET / HTTP/1.0\r\n\r\n")); ok {
		t.Error("a reader that is no socket has a peer")
	}
}

// TestServeJournalCap: an answer of /journal is held whole before it goes,
// so one that would pass the cap is refused with a hint, not built.
func TestServeJournalCap(t *testing.T) {
	c := &capWriter{max: 10}
	c.Write([]byte("12345"))
	c.Write([]byte("12345"))
	if c.over || c.buf.String() != "1234512345" {
		t.Errorf("at the cap: over %v, %q", c.over, c.buf.String())
	}
	c.Write([]byte("x"))
	if !c.over || c.buf.Len() != 10 {
		t.Errorf("past the cap: over %v, %d bytes kept", c.over, c.buf.Len())
	}
}

// TestServeLimitListener: a resident serve holds at most its cap of
// connections; the next is accepted once one of them closes.
func TestServeLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &limitListener{Listener: inner, slots: make(chan struct{}, 1)}
	defer ln.Close()
	for range 2 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if len(ln.slots) != cap(ln.slots) {
		t.Fatalf("%d of %d slots taken after one accept", len(ln.slots), cap(ln.slots))
	}
	second := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		second <- c
	}()
	select {
	case <-second:
		t.Fatal("a second connection was accepted while the only slot was taken")
	default:
	}
	first.Close()
	first.Close() // closing twice frees one slot only
	if c := <-second; c == nil {
		t.Fatal("no second connection after the first closed")
	} else {
		c.Close()
	}
}
