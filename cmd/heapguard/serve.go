package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/metrics"
	"github.com/heapguard/heapguard/remediate"
)

// Limits of serve: a request's line and headers, and how long a client
// may take to send them. GET requests carry no body, so nothing more is
// ever read.
const (
	serveMaxHeader   = 8 << 10
	serveReadTimeout = 5 * time.Second
	// serveWriteTimeout bounds a whole answer: /status samples the heaps
	// within 1.2 s, /report reads the logs.
	serveWriteTimeout = 2 * time.Minute
	// defaultServeAddr is loopback: any other address must be asked for.
	defaultServeAddr = "127.0.0.1:9731"
	// serveHeavyMax is how many answers that run host commands or read
	// the logs (/status, /report) run at once.
	serveHeavyMax = 2
	// serveReportTimeout bounds /report: the logs are read whole and the
	// heaps sampled live.
	serveReportTimeout = 90 * time.Second
	// serveMaxConns bounds a resident serve's connections (a goroutine and
	// buffers each); serveJournalMax an answer of /journal.
	serveMaxConns   = 16
	serveJournalMax = 16 << 20
)

type serveOptions struct {
	*agentFlags
	inetd       bool
	listen      string
	allowRemote bool
	staleAfter  time.Duration
	fs          *flag.FlagSet
}

func init() {
	register(&command{
		name:    "serve",
		noArgs:  true,
		summary: "read-only HTTP: /metrics (Prometheus), /status, /journal, /report, /healthz; under inetd or resident",
		usage:   "[--inetd | --listen ADDR] [flags]",
		help: `Answers HTTP for monitoring, read-only: serve never takes a lock, never acts and writes
nothing. It reads what check and run keep in --state-dir, and the host's logs for /report.

  GET /metrics          Prometheus text exposition of the last check or run (docs/metrics.md)
  GET /status           the JSON of heapguard status (one fresh heap sample, 1.2 s budget)
  GET /journal?since=T  journal --json --since T: the journal's lines from T on (RFC 3339, a day, 6h ago)
  GET /report           the report's page (report --html) for this host and state folder
  GET /healthz          "ok"

Anything else is answered 400 (not HTTP), 404 (no such path) or 405 (not GET or HEAD) with a
short body. A request whose line and headers pass 8 KiB is refused (431), one not complete
within 5 s is answered 408 and the connection closed.

--inetd answers one request on standard input and output, as inetd's "nowait" services do,
and exits. Nothing is written to standard error then (inetd hands the connection over as
standard error too). A client on another host is answered 403 unless --allow-remote is
given (inetd listens on every address), and the whole exchange ends within about 2 min. The inetd.conf line and the local.sh recipe that keeps it across reboots
are in docs/esxi.md.

Without --inetd, serve stays resident on --listen (default 127.0.0.1:9731), with read and write
timeouts and at most 16 connections, until SIGTERM or SIGINT, then finishes the answers
under way. An address other than loopback needs --allow-remote: the answers name VMs and the
host's state. /journal answers at most 16 MiB (413: ask with a later since=).

It takes the same flags as check and status (and the same --config file), to find the same
state folder and host; flags that only matter when acting are accepted and ignored. With
--dry-run, /metrics serves the dry runs' metrics (which check --dry-run keeps apart).

Examples:
  heapguard serve --config /vmfs/volumes/datastore1/heapguard/heapguard.conf
  heapguard serve --listen 0.0.0.0:9731 --allow-remote
  printf 'GET /metrics HTTP/1.0\r\n\r\n' | heapguard serve --inetd

EXIT STATUS:
  0 served (or shut down cleanly), 3 bad usage or the address cannot be listened on`,
		flags: func(fs *flag.FlagSet) any {
			o := &serveOptions{agentFlags: addAgentFlags(fs, false), fs: fs}
			fs.BoolVar(&o.inetd, "inetd", false, "answer one request on standard input and output (inetd nowait) and exit")
			fs.StringVar(&o.listen, "listen", defaultServeAddr, "resident: listen on `ADDR` (host:port)")
			fs.BoolVar(&o.allowRemote, "allow-remote", false, "answer other hosts: --listen on an address other than loopback, or inetd's clients from elsewhere")
			fs.DurationVar(&o.staleAfter, "stale-after", agent.DefaultStaleAfter, "/status: WARNING when the saved state is older than this")
			return o
		},
		run: runServe,
	})
}

func runServe(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*serveOptions)
	// Under inetd standard error is the client's connection: a word there
	// would corrupt the answer.
	errOut := e.stderr
	if o.inetd {
		errOut = io.Discard
	}
	fail := func(err error) int {
		fmt.Fprintf(errOut, "heapguard serve: %v\n", err)
		if o.inetd { // the client is told why instead
			writeBare(e.stdout, http.StatusServiceUnavailable, "heapguard serve: "+err.Error())
		}
		return exitUnknown
	}
	if err := applyConfig(o.fs, o.config); err != nil {
		return fail(err)
	}
	logEnv := e
	logEnv.stderr = errOut
	opt, err := o.options(loggerFor(logEnv, zapcore.Level(o.logLevel)))
	if err != nil {
		return fail(err)
	}
	h := newServeHandler(opt, agent.StatusOptions{StaleAfter: o.staleAfter})
	if o.inetd {
		// A client that reads nothing would hold the process forever on
		// its write: the whole exchange has a limit, then the process ends.
		watchdog := time.AfterFunc(serveReadTimeout+serveWriteTimeout, func() { os.Exit(exitUnknown) })
		defer watchdog.Stop()
		if peer, ok := inetdPeer(e.stdin); ok && !peerAllowed(peer, o.allowRemote) {
			writeBare(e.stdout, http.StatusForbidden, "heapguard serve answers "+peer.String()+" only with --allow-remote")
			return exitUnknown
		}
		if err := serveOne(ctx, h, e.stdin, e.stdout, time.After(serveReadTimeout)); err != nil {
			return exitUnknown // the client has had its answer, or is gone
		}
		return exitOK
	}
	if err := checkListenAddr(o.listen, o.allowRemote); err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fail(fmt.Errorf("listen: %w", err))
	}
	opt.Logger.Info("serving", zap.String("addr", ln.Addr().String()), zap.String("state_dir", opt.StateDir))
	if err := remediate.CheckStateDir(opt.StateDir); err != nil {
		opt.Logger.Warn("the state folder is not private: run and check refuse to start until it is fixed", zap.Error(err))
	}
	if err := serveListener(ctx, h, ln); err != nil {
		return fail(err)
	}
	return exitOK
}

// checkListenAddr refuses an address that is not loopback unless allowed.
func checkListenAddr(addr string, allowRemote bool) error {
	hostPart, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if allowRemote {
		return nil
	}
	ip := net.ParseIP(hostPart)
	if hostPart == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--listen %q is not a loopback address: add --allow-remote to answer other hosts", addr)
}

// inetdPeer is the client of the connection inetd handed over as in, when
// in is a socket. getpeername reads it without touching the descriptor
// (net.FileConn would make the shared descriptor non-blocking, and the
// reads of standard input would fail).
func inetdPeer(in io.Reader) (net.Addr, bool) {
	f, ok := in.(*os.File)
	if !ok {
		return nil, false
	}
	sa, err := syscall.Getpeername(int(f.Fd()))
	if err != nil {
		return nil, false // a pipe or a file: a local caller
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, true
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, true
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}, true
	}
	return nil, false
}

// peerAllowed applies --listen's rule to inetd's clients: other hosts
// need --allow-remote (inetd listens on every address of the host).
func peerAllowed(peer net.Addr, allowRemote bool) bool {
	switch a := peer.(type) {
	case *net.TCPAddr:
		return allowRemote || a.IP.IsLoopback()
	case *net.UDPAddr:
		return allowRemote || a.IP.IsLoopback()
	}
	return true // a unix socket: this host
}

// serveListener serves on ln until ctx ends, then lets the answers under
// way finish (for at most serveWriteTimeout).
func serveListener(ctx context.Context, h http.Handler, ln net.Listener) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: serveReadTimeout,
		ReadTimeout:       serveReadTimeout,
		WriteTimeout:      serveWriteTimeout,
		IdleTimeout:       time.Minute,
		// net/http reads somewhat past this (bufio's slack) before it
		// refuses; guardRequest holds the exact limit.
		MaxHeaderBytes: serveMaxHeader,
	}
	done := make(chan error, 1)
	ln = &limitListener{Listener: ln, slots: make(chan struct{}, serveMaxConns)}
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), serveWriteTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// guardRequest refuses a request whose line and headers, as sent, pass
// serveMaxHeader (the limit serveOne holds exactly by reading no more),
// and a path that is not plain (ServeMux would redirect it): no answer of
// serve is a redirect.
func guardRequest(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; !strings.HasPrefix(p, "/") {
			http.Error(w, "the request target must be a path", http.StatusBadRequest)
			return
		} else if p != "/" && (path.Clean(p) != p || strings.HasSuffix(p, "/")) {
			http.NotFound(w, r)
			return
		}
		n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2 + 2
		if r.Host != "" && r.Header.Get("Host") == "" {
			n += len("Host: \r\n") + len(r.Host) // net/http moves Host out of Header
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + 2 + len(v) + 2
			}
		}
		if n > serveMaxHeader {
			http.Error(w, "request line and headers over 8 KiB", http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveOne answers one request read from in on out (inetd's nowait
// convention), Connection: close. The request must be complete before
// timeout fires; a client that sends less is answered 408 and left: the
// process exits, which closes the connection, even when a read of in
// cannot be interrupted.
func serveOne(ctx context.Context, h http.Handler, in io.Reader, out io.Writer, timeout <-chan time.Time) error {
	type parsed struct {
		req *http.Request
		err error
		big bool
	}
	got := make(chan parsed, 1)
	go func() {
		lr := &io.LimitedReader{R: in, N: serveMaxHeader}
		req, err := http.ReadRequest(bufio.NewReaderSize(lr, 4<<10))
		got <- parsed{req, err, err != nil && lr.N == 0}
	}()
	var p parsed
	select {
	case p = <-got:
	case <-timeout:
		return writeBare(out, http.StatusRequestTimeout, "no complete request within 5 s")
	case <-ctx.Done():
		return ctx.Err()
	}
	switch {
	case p.big:
		return writeBare(out, http.StatusRequestHeaderFieldsTooLarge, "request line and headers over 8 KiB")
	case errors.Is(p.err, io.EOF) || errors.Is(p.err, io.ErrUnexpectedEOF):
		return writeBare(out, http.StatusBadRequest, "incomplete request")
	case p.err != nil:
		return writeBare(out, http.StatusBadRequest, "not an HTTP/1.x request")
	}
	req := p.req.WithContext(ctx)
	req.RemoteAddr = "inetd"
	rec := newBufferedResponse()
	h.ServeHTTP(rec, req)
	return rec.writeTo(out, req.Method == http.MethodHead)
}

// writeBare writes a short plain-text answer and closes the exchange.
func writeBare(out io.Writer, code int, msg string) error {
	rec := newBufferedResponse()
	http.Error(rec, msg, code)
	return rec.writeTo(out, false)
}

// bufferedResponse is an http.ResponseWriter that keeps the answer, so
// that it goes out whole with its length (inetd: one answer, then close).
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse { return &bufferedResponse{header: http.Header{}} }

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

func (b *bufferedResponse) writeTo(out io.Writer, head bool) error {
	b.WriteHeader(http.StatusOK)
	method := http.MethodGet
	if head {
		method = http.MethodHead // the length is sent, the body is not
	}
	resp := &http.Response{
		StatusCode: b.code, ProtoMajor: 1, ProtoMinor: 1, Request: &http.Request{Method: method},
		Header: b.header, ContentLength: int64(b.body.Len()), Close: true, Body: io.NopCloser(&b.body),
	}
	if b.header.Get("Content-Type") == "" && b.body.Len() > 0 {
		b.header.Set("Content-Type", http.DetectContentType(b.body.Bytes()))
	}
	b.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	w := bufio.NewWriter(out)
	if err := resp.Write(w); err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	return nil
}

// newServeHandler routes serve's paths. ServeMux answers 404 for other
// paths and 405 (with Allow) for other methods; GET patterns take HEAD.
func newServeHandler(opt agent.Options, so agent.StatusOptions) http.Handler {
	mux := http.NewServeMux()
	// /status runs vsish and /report reads the logs: a burst of them is
	// answered 503 rather than queued on the host.
	limit := concurrencyLimit(serveHeavyMax)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /status", limit(func(w http.ResponseWriter, r *http.Request) {
		s, err := agent.ReadStatus(r.Context(), opt, so)
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, s)
	}))
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		// What the last check or run saved: a scrape runs no host command.
		now := time.Now()
		if opt.Clock != nil {
			now = opt.Clock.Now()
		}
		file := metrics.FileName
		if opt.DryRun {
			file = metrics.DryRunFileName
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(metrics.ExpositionFile(filepath.Join(opt.StateDir, file), now, opt.Build))
	})
	mux.HandleFunc("GET /report", limit(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), serveReportTimeout)
		defer cancel()
		ro := reportOptions{root: opt.Root, stateDir: opt.StateDir}
		var page bytes.Buffer
		if err := writeReportHTML(ctx, &page, &ro, nil); err != nil {
			http.Error(w, "report: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page.Bytes())
	}))
	mux.HandleFunc("GET /journal", limit(func(w http.ResponseWriter, r *http.Request) {
		serveJournal(w, r, opt)
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "heapguard: GET /metrics, /status, /journal?since=RFC3339, /report, /healthz\n")
	})
	return guardRequest(mux)
}

// concurrencyLimit wraps handlers so that at most n of them run at once,
// together; one more is answered 503 at once.
func concurrencyLimit(n int) func(http.HandlerFunc) http.HandlerFunc {
	slots := make(chan struct{}, n)
	return func(f http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				f(w, r)
			default:
				w.Header().Set("Retry-After", "5")
				http.Error(w, "busy: try again shortly", http.StatusServiceUnavailable)
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// serveJournal answers what `journal --json --since` prints: the
// journal's own lines from ?since= on (host time), damaged ones counted in
// a header, never served.
func serveJournal(w http.ResponseWriter, r *http.Request, opt agent.Options) {
	now := time.Now()
	if opt.Clock != nil {
		now = opt.Clock.Now()
	}
	since, err := parseSince(r.URL.Query().Get("since"), now)
	if err != nil {
		http.Error(w, strings.Replace(err.Error(), "--since", "since=", 1), http.StatusBadRequest)
		return
	}
	body := &capWriter{max: serveJournalMax}
	p := &journalPrinter{w: body, json: true, since: since}
	t := &journalTail{path: filepath.Join(opt.StateDir, remediate.JournalFile), damaged: func() { p.bad++ }}
	defer t.close()
	if _, err := t.read(p.line); err != nil {
		http.Error(w, "journal: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	t.flush(p.line) // a last line without its newline
	if body.over {
		http.Error(w, fmt.Sprintf("the journal's lines from since= on pass %d MiB: ask for less with a later since=", serveJournalMax>>20),
			http.StatusRequestEntityTooLarge)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Heapguard-Damaged-Lines", strconv.Itoa(p.bad))
	w.Write(body.buf.Bytes())
}

// capWriter keeps at most max bytes and says whether more came: the
// journal is never rotated, and an answer is held whole before it goes.
type capWriter struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capWriter) Write(p []byte) (int, error) {
	if c.over || c.buf.Len()+len(p) > c.max {
		c.over = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

// limitListener accepts at most cap(slots) connections at once; more wait
// in the kernel's backlog until one ends.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
}

type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
