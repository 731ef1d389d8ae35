package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Defaults for Config's timeouts.
const (
	DefaultConnectTimeout = 15 * time.Second
	DefaultCommandTimeout = 30 * time.Second
	DefaultCopyTimeout    = 5 * time.Minute
)

// Config is how to reach hosts.
type Config struct {
	User       string // when the target names none; "" is root
	KnownHosts *KnownHosts
	Auth       *Auth
	// LegacyAlgorithms adds the key exchanges, ciphers, MACs and host key
	// types that old hosts (ESXi 4.x/5.x) need and that are broken or weak:
	// never on by default.
	LegacyAlgorithms bool
	ConnectTimeout   time.Duration // TCP connect and SSH handshake, together
	CommandTimeout   time.Duration // each remote command but the copies
	CopyTimeout      time.Duration // sending the binary, reading it back

	// dial replaces net.Dialer in tests (a connection that breaks).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// now replaces time.Now in tests (partial copies' deadlines).
	now func() time.Time
	// vibRoot prefixes, in tests, the host path of the binary a VIB
	// installed (esxsim installs into its root, not /).
	vibRoot string
}

func (c *Config) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Config) connectTimeout() time.Duration {
	return orDefault(c.ConnectTimeout, DefaultConnectTimeout)
}
func (c *Config) commandTimeout() time.Duration {
	return orDefault(c.CommandTimeout, DefaultCommandTimeout)
}
func (c *Config) copyTimeout() time.Duration { return orDefault(c.CopyTimeout, DefaultCopyTimeout) }

// withUser gives t the default user when it names none.
func (c *Config) withUser(t Target) Target {
	if t.User == "" {
		t.User = c.User
	}
	if t.User == "" {
		t.User = "root"
	}
	return t
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// algorithms are the key exchanges, ciphers and MACs to offer.
func algorithms(legacy bool) ssh.Config {
	a := ssh.SupportedAlgorithms()
	if legacy {
		in := ssh.InsecureAlgorithms()
		a.KeyExchanges = append(a.KeyExchanges, in.KeyExchanges...)
		a.Ciphers = append(a.Ciphers, in.Ciphers...)
		a.MACs = append(a.MACs, in.MACs...)
	}
	return ssh.Config{KeyExchanges: a.KeyExchanges, Ciphers: a.Ciphers, MACs: a.MACs}
}

// Client is an SSH connection to one host.
type Client struct {
	Target Target
	conn   *ssh.Client
	cfg    *Config
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Dial connects to t and authenticates, checking its host key.
func Dial(ctx context.Context, t Target, cfg *Config) (*Client, error) {
	if cfg.KnownHosts == nil || cfg.Auth == nil {
		return nil, errors.New("deploy: Config needs KnownHosts and Auth")
	}
	t = cfg.withUser(t)
	timeout := cfg.connectTimeout()
	deadline := time.Now().Add(timeout)
	dialCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	dial := cfg.dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(dialCtx, "tcp", t.Addr())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", t.Addr(), err)
	}
	// The handshake has the rest of the connect time, not counting a
	// password prompt; cancelling ctx closes the connection under it.
	conn.SetDeadline(deadline)
	pause := func() func() {
		conn.SetDeadline(time.Time{})
		start := time.Now()
		return func() {
			deadline = deadline.Add(time.Since(start))
			conn.SetDeadline(deadline)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	db, err := cfg.KnownHosts.load()
	if err != nil {
		conn.Close()
		return nil, err
	}
	known, err := knownKeys(db, t.Addr(), conn.RemoteAddr())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("known hosts for %s: %w", t.Addr(), err)
	}
	cc := &ssh.ClientConfig{
		Config:            algorithms(cfg.LegacyAlgorithms),
		User:              t.User,
		Auth:              cfg.Auth.methods(pause),
		HostKeyCallback:   cfg.KnownHosts.callback(db),
		HostKeyAlgorithms: hostKeyAlgorithms(known, cfg.LegacyAlgorithms),
		ClientVersion:     "SSH-2.0-heapguard-deploy",
	}
	sconn, chans, reqs, err := ssh.NewClientConn(conn, t.Addr(), cc)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh %s: %w", t, ctx.Err())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("ssh %s: handshake took more than %v: %w", t, timeout, err)
		}
		hostKey := strings.Contains(err.Error(), "no common algorithm for host key")
		switch {
		case hostKey && len(known) > 0 && (cfg.LegacyAlgorithms || !sha1Only(known)):
			return nil, fmt.Errorf("ssh %s: %w: the host offers none of the key types known hosts holds for it (%s): %v",
				t, ErrHostKeyChanged, strings.Join(cc.HostKeyAlgorithms, ", "), err)
		case strings.Contains(err.Error(), "no common algorithm") && !cfg.LegacyAlgorithms:
			return nil, fmt.Errorf("ssh %s: %w (an ESXi 4.x/5.x host may need --legacy-algorithms)", t, err)
		}
		return nil, fmt.Errorf("ssh %s: %w", t, err)
	}
	conn.SetDeadline(time.Time{})
	return &Client{Target: t, conn: ssh.NewClient(sconn, chans, reqs), cfg: cfg}, nil
}

// sha1Only: a known key is RSA or DSA, which an old host signs with SHA-1
// only (ssh-rsa, ssh-dss), offered with LegacyAlgorithms alone.
func sha1Only(known []knownhosts.KnownKey) bool {
	for _, k := range known {
		if t := k.Key.Type(); t == ssh.KeyAlgoRSA || t == ssh.KeyAlgoDSA {
			return true
		}
	}
	return false
}

// RemoteError is a remote command that ran and exited non-zero.
type RemoteError struct {
	Command string
	Status  int
	Stderr  string // its first line
}

func (e *RemoteError) Error() string {
	msg := fmt.Sprintf("remote %q: exit status %d", e.Command, e.Status)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// runScript runs s with paths quoted in, with no input or output.
func (c *Client) runScript(ctx context.Context, timeout time.Duration, s script, paths ...string) error {
	return c.pipeScript(ctx, timeout, s, nil, nil, paths...)
}

// pipeScript runs s with paths quoted in, stdin and stdout given (nil:
// none).
func (c *Client) pipeScript(ctx context.Context, timeout time.Duration, s script, stdin io.Reader, stdout io.Writer, paths ...string) error {
	cmd, err := shellCommand(s, paths...)
	if err != nil {
		return err
	}
	return c.run(ctx, timeout, cmd, stdin, stdout)
}

// run runs cmd (built by shellCommand) in its own session, with stdin and
// stdout given, and stops it after timeout.
func (c *Client) run(ctx context.Context, timeout time.Duration, cmd string, stdin io.Reader, stdout io.Writer) error {
	s, err := c.conn.NewSession()
	if err != nil {
		return fmt.Errorf("remote %q: open session: %w", cmd, err)
	}
	defer s.Close()
	var stderr bytes.Buffer
	s.Stdin = stdin
	s.Stdout = stdout
	s.Stderr = &limitedBuffer{b: &stderr, n: 4096}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.Start(cmd); err != nil {
		return fmt.Errorf("remote %q: %w", cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// OpenSSH refuses signals to a root session without privilege
		// separation (as on ESXi), so the command may run on; closing the
		// channel ends its input and output. Wait returns when it exits or
		// the connection closes.
		s.Signal(ssh.SIGKILL)
		s.Close()
		return fmt.Errorf("remote %q: stopped after %v: %w", cmd, timeout, ctx.Err())
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		first, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		return &RemoteError{Command: cmd, Status: exit.ExitStatus(), Stderr: first}
	}
	if err != nil {
		return fmt.Errorf("remote %q: %w", cmd, err)
	}
	return nil
}

// limitedBuffer keeps the first n bytes and discards the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
