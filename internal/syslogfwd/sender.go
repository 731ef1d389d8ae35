package syslogfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// LocalSocket is where syslog(3), busybox's logger and log/syslog write
// on Linux and ESXi.
const LocalSocket = "/dev/log"

// Defaults of a Sender.
const (
	DefaultQueueLen     = 256
	DefaultDialTimeout  = 2 * time.Second
	DefaultWriteTimeout = 2 * time.Second
	DefaultMinBackoff   = 1 * time.Second
	DefaultMaxBackoff   = 30 * time.Second
)

// Config says where and how a Sender sends.
type Config struct {
	// Network is "unix" (the local socket: datagram, or stream where the
	// socket is one), "udp" or "tcp"; Addr the socket path or host:port.
	Network string
	Addr    string
	Format  Format
	// Hostname names this host in the messages; "" asks the system.
	Hostname string
	// QueueLen bounds the messages waiting to be sent; more are dropped.
	QueueLen int
	// DialTimeout and WriteTimeout bound each connect and each write.
	DialTimeout, WriteTimeout time.Duration
	// After a failure, the next connect waits MinBackoff, doubling up to
	// MaxBackoff while it keeps failing; messages meanwhile are dropped.
	MinBackoff, MaxBackoff time.Duration
	// Logger says when the destination goes away and comes back.
	Logger *zap.Logger
}

// Sender sends messages from a bounded queue in its own goroutine: Send
// never waits for the network. What cannot be sent (queue full,
// destination down, closed) is dropped and counted.
type Sender struct {
	cfg      Config
	hostname string
	pid      int
	queue    chan Message
	closing  chan struct{}
	done     chan struct{}
	// ctx is cancelled when Close's flush time is up: a connect under
	// way gives up.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
	mu        sync.Mutex // guards closed against Send
	closed    bool

	// logMu and quiet keep the goroutine from logging once Close has
	// returned: its caller may have closed or read what the logger writes
	// to, while a write the flush gave up on is still ending.
	logMu sync.Mutex
	quiet bool

	sent, dropped atomic.Uint64

	// Owned by the sending goroutine.
	conn      net.Conn
	stream    bool // conn needs framing
	nextDial  time.Time
	backoff   time.Duration
	down      bool   // the last attempt failed; logged once per outage
	downSince uint64 // dropped count when the outage started
}

// Network names the transports New accepts.
func validNetwork(n string) bool { return n == "unix" || n == "udp" || n == "tcp" }

// New starts a sender. It does not connect: the first message does, so a
// destination that is down at start delays nothing.
func New(cfg Config) (*Sender, error) {
	if !validNetwork(cfg.Network) {
		return nil, fmt.Errorf("syslog: network %q: want unix, udp or tcp", cfg.Network)
	}
	if cfg.Addr == "" {
		return nil, errors.New("syslog: no address")
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	s := &Sender{
		cfg: cfg, hostname: hostname, pid: os.Getpid(),
		queue: make(chan Message, cfg.QueueLen), closing: make(chan struct{}), done: make(chan struct{}),
		backoff: cfg.MinBackoff,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s, nil
}

// Send queues m and returns at once; a full queue drops it.
func (s *Sender) Send(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.dropped.Add(1)
		return
	}
	select {
	case s.queue <- m:
	default:
		s.dropped.Add(1)
	}
}

// Sent and Dropped count the messages so far.
func (s *Sender) Sent() uint64    { return s.sent.Load() }
func (s *Sender) Dropped() uint64 { return s.dropped.Load() }

// Close sends what is queued for at most flush, then stops: it returns
// within flush whatever the network does. It reports the messages sent
// and dropped over the sender's life (those still queued count as
// dropped).
func (s *Sender) Close(flush time.Duration) (sent, dropped uint64) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.closing)
	})
	t := time.AfterFunc(flush, s.cancel)
	defer t.Stop()
	select {
	case <-s.done:
	case <-s.ctx.Done():
		// A write blocked in the kernel ends at its deadline; what is
		// still queued is lost. Each message is counted by whichever of
		// Close and the goroutine takes it.
		for drained := false; !drained; {
			select {
			case <-s.queue:
				s.dropped.Add(1)
			default:
				drained = true
			}
		}
	}
	s.logMu.Lock()
	s.quiet = true
	s.logMu.Unlock()
	return s.sent.Load(), s.dropped.Load()
}

// logf logs from the sending goroutine, unless Close has returned.
func (s *Sender) logf(log func(*zap.Logger)) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if !s.quiet {
		log(s.cfg.Logger)
	}
}

func (s *Sender) loop() {
	defer close(s.done)
	defer func() {
		if s.conn != nil {
			s.conn.Close()
		}
	}()
	for {
		select {
		case m := <-s.queue:
			s.deliver(m)
			continue
		default:
		}
		select {
		case m := <-s.queue:
			s.deliver(m)
		case <-s.closing:
			for {
				select {
				case m := <-s.queue:
					s.deliver(m)
				default:
					return
				}
			}
		}
	}
}

// deliver sends one message or drops it; it never retries the message,
// so one bad destination costs at most a connect and a write per backoff.
func (s *Sender) deliver(m Message) {
	if s.ctx.Err() != nil {
		s.dropped.Add(1)
		return
	}
	if s.conn == nil {
		if time.Now().Before(s.nextDial) {
			s.dropped.Add(1)
			return
		}
		if err := s.dial(); err != nil {
			s.fail(fmt.Errorf("connect %s %s: %w", s.cfg.Network, s.cfg.Addr, err))
			return
		}
	}
	hostname := s.hostname
	if s.cfg.Network == "unix" && s.cfg.Format == RFC3164 {
		hostname = "" // as syslog(3): the local daemon names its host
	}
	b := Encode(s.cfg.Format, hostname, s.pid, m)
	b = s.frame(b)
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := s.conn.Write(b); err != nil {
		s.conn.Close()
		s.conn = nil
		s.fail(fmt.Errorf("send to %s %s: %w", s.cfg.Network, s.cfg.Addr, err))
		return
	}
	s.sent.Add(1)
	if s.down {
		meanwhile := s.dropped.Load() - s.downSince
		s.logf(func(l *zap.Logger) {
			l.Info("syslog destination reachable again", zap.String("addr", s.cfg.Addr), zap.Uint64("dropped_meanwhile", meanwhile))
		})
		s.down = false
	}
	s.backoff = s.cfg.MinBackoff
}

// frame delimits a message on a stream. TCP: RFC 6587 octet counting for
// RFC 5424 (its recommended framing; the message needs no escaping),
// a trailing newline for RFC 3164, which is what receivers of BSD syslog
// over TCP expect. Our messages never hold a newline, so both are exact.
// A stream-type local socket gets a newline, as log/syslog sends it.
func (s *Sender) frame(b []byte) []byte {
	if !s.stream {
		return b
	}
	if s.cfg.Network == "tcp" && s.cfg.Format == RFC5424 {
		return append([]byte(strconv.Itoa(len(b))+" "), b...)
	}
	return append(b, '\n')
}

func (s *Sender) dial() error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	switch s.cfg.Network {
	case "unix":
		c, err := d.DialContext(ctx, "unixgram", s.cfg.Addr)
		if errors.Is(err, syscall.EPROTOTYPE) {
			// The socket is a stream one (some syslog daemons).
			c, err = d.DialContext(ctx, "unix", s.cfg.Addr)
			s.conn, s.stream = c, true
		} else {
			s.conn, s.stream = c, false
		}
		if err != nil {
			s.conn = nil
		}
		return err
	case "tcp":
		c, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
		if err != nil {
			return err
		}
		s.conn, s.stream = c, true
		return nil
	default:
		c, err := d.DialContext(ctx, "udp", s.cfg.Addr)
		if err != nil {
			return err
		}
		s.conn, s.stream = c, false
		return nil
	}
}

// fail drops the message at hand and waits out a backoff before the next
// connect; the first failure of an outage is logged.
func (s *Sender) fail(err error) {
	s.dropped.Add(1)
	s.nextDial = time.Now().Add(s.backoff)
	if !s.down {
		s.down = true
		s.downSince = s.dropped.Load() - 1
		backoff := s.backoff
		s.logf(func(l *zap.Logger) {
			l.Warn("syslog destination unreachable: dropping messages, the journal keeps them",
				zap.Error(err), zap.Duration("retry_in", backoff))
		})
	}
	s.backoff = min(2*s.backoff, s.cfg.MaxBackoff)
}
