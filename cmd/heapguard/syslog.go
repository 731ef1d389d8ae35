package main

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/heapguard/heapguard/internal/syslogfwd"
	"github.com/heapguard/heapguard/remediate"
)

// syslogFlushTimeout bounds how long run and check wait at exit for the
// last messages to leave: syslog is a copy, the journal is the record.
const syslogFlushTimeout = time.Second

// syslogDest is --syslog: a boolean flag that also takes an address, so
// both "--syslog" and "--syslog=udp://host:514" parse.
type syslogDest struct {
	network, addr string // network "": off
}

func (d *syslogDest) IsBoolFlag() bool { return true }

func (d *syslogDest) String() string {
	switch {
	case d == nil || d.network == "":
		return ""
	case d.network == "unix" && d.addr == syslogfwd.LocalSocket:
		return "true"
	case d.network == "unix":
		// Escaped, so that a path with %, ? or # reads back as itself.
		return (&url.URL{Scheme: "unix", Path: d.addr}).String()
	}
	return d.network + "://" + d.addr
}

// Set takes "true" (what the bare flag passes: the local socket),
// "false", udp://HOST:PORT, tcp://HOST:PORT (port 514 when left out) or
// unix:///PATH (another local socket).
func (d *syslogDest) Set(s string) error {
	switch s {
	case "true":
		d.network, d.addr = "unix", syslogfwd.LocalSocket
		return nil
	case "false":
		d.network, d.addr = "", ""
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("want udp://HOST:PORT, tcp://HOST:PORT or nothing (the local syslog, %s)", syslogfwd.LocalSocket)
	}
	switch u.Scheme {
	case "udp", "tcp":
		if u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
			return fmt.Errorf("want %s://HOST:PORT", u.Scheme)
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return fmt.Errorf("want %s://HOST:PORT: no host", u.Scheme)
		}
		if !validHost(host) {
			return fmt.Errorf("want %s://HOST:PORT: %q is not a host name or IP address", u.Scheme, host)
		}
		if port == "" {
			port = "514"
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("want %s://HOST:PORT: port %q is not 1 to 65535", u.Scheme, port)
		}
		d.network, d.addr = u.Scheme, net.JoinHostPort(host, port)
	case "unix":
		if u.Host != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Errorf("want unix:///PATH (an absolute socket path)")
		}
		if strings.IndexFunc(u.Path, unicode.IsControl) >= 0 {
			return fmt.Errorf("unix socket path %q: has a control character", u.Path)
		}
		if len(u.Path) > 107 {
			// sockaddr_un holds 108 bytes with the closing NUL.
			return fmt.Errorf("unix socket path %q: longer than 107 bytes", u.Path)
		}
		d.network, d.addr = "unix", u.Path
	default:
		return fmt.Errorf("scheme %q: want udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH", u.Scheme)
	}
	return nil
}

// validHost: an IP address, or a name of letters, digits, dots, dashes
// and underscores.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return h != ""
}

// syslogFormat is --syslog-format.
type syslogFormat struct {
	f   syslogfwd.Format
	set bool
}

func (f *syslogFormat) String() string {
	if f == nil {
		return "3164"
	}
	return f.f.String()
}

func (f *syslogFormat) Set(s string) error {
	v, err := syslogfwd.ParseFormat(s)
	if err != nil {
		return fmt.Errorf("want 3164 or 5424")
	}
	f.f, f.set = v, true
	return nil
}

func addSyslogFlags(fs *flag.FlagSet, o *agentFlags) {
	fs.Var(&o.syslog, "syslog", "also send each journal entry to syslog (facility daemon, tag heapguard): "+
		"--syslog alone writes to the local socket "+syslogfwd.LocalSocket+" (on ESXi: syslog.log and its forwarding), "+
		"--syslog=udp://HOST:PORT or --syslog=tcp://HOST:PORT to a collector (port 514 if left out), --syslog=unix:///PATH to another socket; "+
		"at most 1 KiB a message, dropped and counted when syslog is down (the journal stays complete)")
	fs.Var(&o.syslogFormat, "syslog-format", "syslog message `format`: 3164 (BSD, the default) or 5424")
}

// checkSyslog refuses a format without a destination: it would
// silently send nothing.
func (o *agentFlags) checkSyslog() error {
	if o.syslogFormat.set && o.syslog.network == "" {
		return fmt.Errorf("--syslog-format %s: without --syslog nothing is sent", o.syslogFormat.f)
	}
	return nil
}

// openSyslog starts the sender --syslog asks for, nil without it. The
// returned stop flushes for at most syslogFlushTimeout and logs what
// was dropped.
func openSyslog(o *agentFlags, logger *zap.Logger) (observe func(remediate.Entry), stop func()) {
	if o.syslog.network == "" {
		return nil, func() {}
	}
	s, err := syslogfwd.New(syslogfwd.Config{
		Network: o.syslog.network, Addr: o.syslog.addr, Format: o.syslogFormat.f, Logger: logger,
	})
	if err != nil {
		// The flag's Set checked everything New checks.
		logger.Error("syslog", zap.Error(err))
		return nil, func() {}
	}
	observe = func(e remediate.Entry) { s.Send(syslogfwd.EntryMessage(e)) }
	stop = func() {
		sent, dropped := s.Close(syslogFlushTimeout)
		if dropped > 0 {
			logger.Warn("syslog messages dropped (the journal has every entry)",
				zap.String("syslog", o.syslog.String()), zap.Uint64("sent", sent), zap.Uint64("dropped", dropped))
		} else {
			logger.Debug("syslog messages sent", zap.Uint64("sent", sent))
		}
	}
	return observe, stop
}
