// Package deploytest holds what deploy's tests stand on: a real OpenSSH
// sshd started on loopback (its own host keys, config, authorized keys and
// pid file in a temp folder, run as the current user, stopped with its
// children when the test ends), the same sshd in front of a simulated ESXi
// host whose sessions run chrooted in an esxsim root with a busybox shell
// (StartESXi, esxi.go), and small ELF files shaped like binaries deploy
// must send or refuse.
//
// It must not be imported by production code.
package deploytest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/testtool"

	"golang.org/x/crypto/ssh"
)

// Server is a running sshd.
type Server struct {
	Dir      string // its temp folder
	Addr     string // 127.0.0.1:port
	Port     int
	HostKeys map[string]ssh.PublicKey // by type name: "ed25519", "ecdsa"
	cmd      *exec.Cmd
	mu       sync.Mutex
	log      strings.Builder
}

// Options shape the server.
type Options struct {
	// HostKeys are the types of host key it has: "ed25519", "ecdsa", "rsa".
	// Empty: both.
	HostKeys []string
	// Authorized are the user keys it accepts.
	Authorized []ssh.PublicKey
	// Config is appended to sshd_config.
	Config string
	// Env is set in every session, NAME=value each (sshd's SetEnv, OpenSSH
	// 7.8+, which overrides the PATH sshd sets); a value must not hold a
	// double quote.
	Env []string
}

// Path finds sshd: a test that needs it skips when it is missing, but
// fails when CI=true (CI installs openssh-server).
func Path(t testing.TB) string {
	t.Helper()
	return testtool.Need(t, "openssh-server", "/usr/sbin/sshd", "/usr/local/sbin/sshd", "sshd")
}

// Start runs sshd -D -e on a free loopback port.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	sshd := Path(t)
	if os.Geteuid() == 0 {
		// sshd running as root wants its privilege separation folder,
		// which the openssh-server service creates at start.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshd privilege separation folder: %v", err)
		}
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, HostKeys: map[string]ssh.PublicKey{}}
	types := o.HostKeys
	if len(types) == 0 {
		types = []string{"ed25519", "ecdsa"}
	}
	var cfg strings.Builder
	for _, typ := range types {
		p := filepath.Join(dir, "host_"+typ)
		s.HostKeys[typ] = WriteKey(t, p, typ)
		fmt.Fprintf(&cfg, "HostKey %s\n", p)
	}
	var auth strings.Builder
	for _, k := range o.Authorized {
		auth.Write(ssh.MarshalAuthorizedKey(k))
	}
	authFile := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authFile, []byte(auth.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Port = freePort(t)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
	fmt.Fprintf(&cfg, `ListenAddress 127.0.0.1:%d
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
LogLevel VERBOSE
SetEnv SHLVL=1%s
%s`, s.Port, filepath.Join(dir, "sshd.pid"), authFile, setEnv(o.Env), o.Config)
	cfgFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// SHLVL=1 above: bash, as root's shell, reads ~/.bashrc for every
	// command sshd runs unless it believes it is nested; ESXi's busybox
	// sh reads nothing, and a developer's .bashrc can cost seconds.
	s.cmd = exec.Command(sshd, "-D", "-e", "-f", cfgFile)
	// Its own process group: the stop reaches the per-connection children.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	pgid := s.cmd.Process.Pid
	ready := make(chan struct{})
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		listening := fmt.Sprintf("Server listening on 127.0.0.1 port %d", s.Port)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if strings.Contains(sc.Text(), listening) {
				close(ready)
				listening = "\x00" // once
			}
		}
	}()
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGTERM)
		s.cmd.Wait()
		<-logDone
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	select {
	case <-ready:
	case <-logDone:
		t.Fatalf("sshd exited before listening:\n%s", s.Log())
	case <-time.After(10 * time.Second):
		t.Fatalf("sshd not listening after 10s:\n%s", s.Log())
	}
	return s
}

// setEnv is the rest of the one SetEnv line (sshd takes only the first).
func setEnv(env []string) string {
	var b strings.Builder
	for _, e := range env {
		fmt.Fprintf(&b, " \"%s\"", e)
	}
	return b.String()
}

// Log is what sshd has printed so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// KnownHostsLine is a known_hosts line for the server's key of type typ.
func (s *Server) KnownHostsLine(typ string) string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKeys[typ]))))
}

// WriteKey generates a private key of type typ ("ed25519", "ecdsa", "rsa"),
// writes it in OpenSSH format to path and returns its public half.
func WriteKey(t testing.TB, path, typ string) ssh.PublicKey {
	t.Helper()
	var priv any
	switch typ {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	default:
		t.Fatalf("key type %q", typ)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey()
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
