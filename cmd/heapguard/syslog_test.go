package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/internal/syslogfwd"
	"github.com/heapguard/heapguard/remediate"
)

// dryCheckArgs is a dry check of the seed incident at the point where it
// plans power-offs and a vpxa restart.
func dryCheckArgs(t *testing.T, root string) (args []string, stateDir string) {
	stateDir = t.TempDir()
	return []string{"check", "--dry-run", "--root", root, "--state-dir", stateDir, "--power-off-allow", "DSVA*", "--hold-polls", "1"}, stateDir
}

var (
	rfc3164Re = regexp.MustCompile(`^<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?:(\S+) )?heapguard\[(\d+)\]: (.*)$`)
	rfc5424Re = regexp.MustCompile(`^<(\d+)>1 (\S+) (\S+) heapguard (\d+) (\S+) - (.*)$`)
)

// checkSyslogMessages compares the messages received with the journal,
// field by field: one message per entry, in order.
func checkSyslogMessages(t *testing.T, f syslogfwd.Format, wantHost string, got []string, entries []remediate.Entry) {
	t.Helper()
	if len(entries) == 0 {
		t.Fatal("nothing journaled")
	}
	if len(got) != len(entries) {
		t.Fatalf("%d syslog messages for %d journal entries:\n%s", len(got), len(entries), strings.Join(got, "\n"))
	}
	pid := strconv.Itoa(os.Getpid())
	for i, e := range entries {
		m, want := got[i], syslogfwd.EntryMessage(e)
		if len(m) > syslogfwd.MaxMessage {
			t.Errorf("message %d: %d bytes", i, len(m))
		}
		wantPRI := strconv.Itoa(3*8 + int(syslogfwd.EntrySeverity(e))) // facility daemon
		at, _ := time.Parse(time.RFC3339Nano, e.Time)
		var pri, ts, host, procid, text string
		if f == syslogfwd.RFC5424 {
			p := rfc5424Re.FindStringSubmatch(m)
			if p == nil {
				t.Errorf("message %d is not RFC 5424 from heapguard: %q", i, m)
				continue
			}
			pri, ts, host, procid, text = p[1], p[2], p[3], p[4], p[6]
			if p[5] != string(e.Action) {
				t.Errorf("message %d: MSGID %q, want the action %q", i, p[5], e.Action)
			}
			if want := at.UTC().Format("2006-01-02T15:04:05.000000Z"); ts != want {
				t.Errorf("message %d: timestamp %q, want %q", i, ts, want)
			}
		} else {
			p := rfc3164Re.FindStringSubmatch(m)
			if p == nil {
				t.Errorf("message %d is not RFC 3164 from heapguard: %q", i, m)
				continue
			}
			pri, ts, host, procid, text = p[1], p[2], p[3], p[4], p[5]
			if want := at.UTC().Format(time.Stamp); ts != want {
				t.Errorf("message %d: timestamp %q, want %q", i, ts, want)
			}
		}
		if pri != wantPRI || host != wantHost || procid != pid || text != want.Text {
			t.Errorf("message %d: PRI %s host %q pid %s text %q\nwant PRI %s host %q pid %s text %q", i, pri, host, procid, text, wantPRI, wantHost, pid, want.Text)
		}
	}
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSyslogCopiesTheJournal runs a dry check of the seed incident with
// --syslog to a local datagram socket (RFC 3164, no hostname, as
// syslog(3)), to UDP in RFC 5424, and to TCP in both formats: every
// journal entry arrives as one message.
func TestSyslogCopiesTheJournal(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(109 * time.Minute)

	t.Run("local socket, 3164", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "log")
		c, err := net.ListenPacket("unixgram", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		args, state := dryCheckArgs(t, h.Root())
		code, out, stderr := runCLI(t, append(args, "--syslog=unix://"+sock)...)
		if code != exitCritical {
			t.Fatalf("exit %d, want 2\n%s\n%s", code, out, stderr)
		}
		entries := readJournal(t, state)
		if len(entries) < 3 {
			t.Fatalf("the dry check journaled %d entries, want a decision and its steps", len(entries))
		}
		checkSyslogMessages(t, syslogfwd.RFC3164, "", readDatagrams(c, len(entries)+1), entries)
	})
	t.Run("udp, 5424", func(t *testing.T) {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		args, state := dryCheckArgs(t, h.Root())
		runCLI(t, append(args, "--syslog=udp://"+c.LocalAddr().String(), "--syslog-format", "5424")...)
		entries := readJournal(t, state)
		checkSyslogMessages(t, syslogfwd.RFC5424, hostname(t), readDatagrams(c, len(entries)+1), entries)
	})
	for _, f := range []syslogfwd.Format{syslogfwd.RFC3164, syslogfwd.RFC5424} {
		t.Run("tcp, "+f.String(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan []string, 1)
			go func() { got <- readStream(ln, f) }()
			args, state := dryCheckArgs(t, h.Root())
			runCLI(t, append(args, "--syslog=tcp://"+ln.Addr().String(), "--syslog-format="+f.String())...)
			entries := readJournal(t, state)
			checkSyslogMessages(t, f, hostname(t), <-got, entries)
		})
	}
}

// TestSyslogFromRunAndConfig: run takes --syslog from its --config file
// too, and its entries (here the stop it journals when the simulator is
// paused, an err) reach the socket.
func TestSyslogFromRunAndConfig(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "healthy") // paused: run stops after one wait
	dir := t.TempDir()
	sock := filepath.Join(dir, "log")
	c, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conf := filepath.Join(dir, "heapguard.conf")
	if err := os.WriteFile(conf, []byte("syslog unix://"+sock+"\nsyslog-format 5424\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	code, _, stderr := runCLI(t, "run", "--config", conf, "--root", h.Root(), "--state-dir", state, "--interval", "50ms", "--for", "1s")
	entries := readJournal(t, state)
	if code != exitUnknown || len(entries) == 0 || entries[len(entries)-1].Action != remediate.ActStop {
		t.Fatalf("run: exit %d, journal %+v; stderr:\n%s", code, entries, stderr)
	}
	got := readDatagrams(c, len(entries)+1)
	checkSyslogMessages(t, syslogfwd.RFC5424, hostname(t), got, entries)
	if n := len(got); n > 0 && !strings.HasPrefix(got[n-1], "<27>1 ") {
		t.Errorf("the failed stop: %q, want severity err (PRI 27)", got[n-1])
	}
}

// readDatagrams reads up to n datagrams, stopping when none came for a
// second (check has returned: what was sent is in the socket's buffer).
func readDatagrams(c net.PacketConn, n int) []string {
	var got []string
	buf := make([]byte, 64<<10)
	for len(got) < n {
		c.SetReadDeadline(time.Now().Add(time.Second))
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:k]))
	}
	return got
}

// readStream reads one connection's messages until it closes: octet
// counted (RFC 6587) for RFC 5424, a line each for RFC 3164.
func readStream(ln net.Listener, f syslogfwd.Format) []string {
	// Nothing sent, nothing connects: fail, not hang.
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		return []string{"accept: " + err.Error()}
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	var got []string
	for {
		if f == syslogfwd.RFC3164 {
			line, err := r.ReadString('\n')
			if err != nil {
				return got
			}
			got = append(got, strings.TrimSuffix(line, "\n"))
			continue
		}
		var n int
		if _, err := fmt.Fscanf(r, "%d ", &n); err != nil {
			return got
		}
		b := make([]byte, n)
		if _, err := r.Read(b[:0]); err != nil {
			return got
		}
		k := 0
		for k < n {
			m, err := r.Read(b[k:])
			if err != nil {
				return append(got, "short frame: "+string(b[:k]))
			}
			k += m
		}
		got = append(got, string(b))
	}
}

// hangingTCPAddr is a TCP address whose connects hang: a listener with a
// backlog of 0 whose queue is already full, so the kernel drops further
// SYNs and a connect waits for its timeout.
func hangingTCPAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the accept queue; never accept.
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c.Close()
		t.Skip("connects to a full backlog do not hang here")
	}
	return addr
}

// TestSyslogOutageDoesNotSlowCheck: with syslog unreachable (a TCP
// collector that accepts and never reads, one whose connects hang, a UDP
// port nobody listens on) a dry check is held up by at most the flush
// bound (syslogFlushTimeout), with a margin for load, and its journal is
// complete.
func TestSyslogOutageDoesNotSlowCheck(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(109 * time.Minute)

	deafTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer deafTCP.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := deafTCP.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deafUDP := udp.LocalAddr().String()
	udp.Close()

	timed := func(extra ...string) (time.Duration, []remediate.Entry, string) {
		args, state := dryCheckArgs(t, h.Root())
		start := time.Now()
		code, out, stderr := runCLI(t, append(args, extra...)...)
		took := time.Since(start)
		if code != exitCritical {
			t.Fatalf("%q: exit %d\n%s\n%s", extra, code, out, stderr)
		}
		return took, readJournal(t, state), stderr
	}
	// The slower of two runs without syslog: the machine's load varies.
	base, want, _ := timed()
	if again, _, _ := timed(); again > base {
		base = again
	}
	for _, tc := range []struct {
		dest string
		// A drop is certain: not with the never-reading collector, whose
		// kernel takes the few messages, nor the deaf UDP port, whose
		// refusal may come after the last message went.
		drops bool
	}{{"tcp://" + deafTCP.Addr().String(), false}, {"tcp://" + hangingTCPAddr(t), true}, {"udp://" + deafUDP, false}} {
		dest := tc.dest
		took, entries, stderr := timed("--syslog=" + dest)
		t.Logf("%s: check took %v, %v without syslog", dest, took, base)
		// What this guards against is an unbounded wait (a connect or a
		// write that hangs for minutes), not a few hundred milliseconds: the
		// margin absorbs a loaded machine, where one run can take twice
		// another.
		if bound := 2*base + syslogFlushTimeout + 3*time.Second; took > bound {
			t.Errorf("%s: check took %v, want at most %v (without syslog %v, plus the flush bound)", dest, took, bound, base)
		}
		if len(entries) != len(want) {
			t.Errorf("%s: journal has %d entries, want %d", dest, len(entries), len(want))
		}
		if tc.drops && !strings.Contains(stderr, "syslog messages dropped (the journal has every entry)") {
			t.Errorf("%s: the drops are not logged:\n%s", dest, stderr)
		}
	}
}

// TestSyslogFlags: --syslog takes no value or one after "="; a value after
// a space is an argument, which check refuses; mistakes say the form.
func TestSyslogFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--syslog", "udp://collector:514"}, `heapguard check: unexpected argument "udp://collector:514"`},
		{[]string{"check", "--syslog=ftp://collector"}, `heapguard check: invalid boolean value "ftp://collector" for -syslog: scheme "ftp": want udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH`},
		{[]string{"check", "--syslog=udp://:514"}, `want udp://HOST:PORT: no host`},
		{[]string{"check", "--syslog=tcp://collector:70000"}, `want tcp://HOST:PORT: port "70000" is not 1 to 65535`},
		{[]string{"check", "--syslog=tcp://::"}, `want tcp://HOST:PORT: ":" is not a host name or IP address`},
		{[]string{"check", "--syslog=unix://relative/log"}, `want unix:///PATH (an absolute socket path)`},
		{[]string{"check", "--syslog=unix:///dev/log?facility=daemon"}, `want unix:///PATH (an absolute socket path)`},
		{[]string{"check", "--syslog=unix:///dev/log%0A"}, `unix socket path "/dev/log\n": has a control character`},
		{[]string{"run", "--syslog-format", "json"}, `heapguard run: invalid value "json" for flag -syslog-format: want 3164 or 5424`},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != exitUnknown || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %.300q; want 3 and %q", tc.args, code, stderr, tc.want)
		}
	}
	code, out, _ := runCLI(t, "check", "--state-dir", t.TempDir(), "--syslog-format", "5424")
	if code != exitUnknown || !strings.Contains(out, "--syslog-format 5424: without --syslog nothing is sent") {
		t.Errorf("--syslog-format alone: exit %d, %q", code, out)
	}
	var d syslogDest
	for in, want := range map[string]string{"true": "true", "udp://c:1514": "udp://c:1514", "tcp://[::1]": "tcp://[::1]:514", "unix:///var/run/log": "unix:///var/run/log", "unix:///tmp/a%25b%3Fc": "unix:///tmp/a%25b%3Fc", "false": ""} {
		if err := d.Set(in); err != nil || d.String() != want {
			t.Errorf("Set(%q): %q, %v; want %q", in, d.String(), err, want)
		}
	}
}

// FuzzSyslogDest: --syslog's value either parses into a destination that
// prints back as itself, or is refused; never a panic.
func FuzzSyslogDest(f *testing.F) {
	for _, s := range []string{"true", "false", "udp://c:514", "tcp://[::1]", "unix:///dev/log", "ftp://x", "udp://:1", "tcp://h:p", "unix://rel", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d syslogDest
		if d.Set(s) != nil {
			return
		}
		printed := d.String()
		var again syslogDest
		if err := again.Set(printed); s != "false" && (err != nil || again != d) {
			t.Fatalf("%q parsed as %+v, printed %q, parsed back as %+v, %v", s, d, printed, again, err)
		}
	})
}
