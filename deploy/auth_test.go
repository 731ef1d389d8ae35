package deploy

import (
	"context"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/heapguard/heapguard/internal/deploytest"
)

// TestAgentAuth: the key sshd accepts is only in an agent, served on a
// unix socket as ssh-agent does.
func TestAgentAuth(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: r.userKey}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	ag, closer, err := DialAgent(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	r.cfg.Auth = &Auth{Agent: ag}
	res, err := r.deploy()
	if err != nil || res.Action != Installed {
		t.Fatalf("deploy with the agent's key = %+v, %v", res, err)
	}
	// Without it sshd refuses.
	keyring.RemoveAll()
	if err := dialOnly(r); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("dial with an empty agent: %v; want refused", err)
	}
}

func TestKeyFileAuth(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	dir := t.TempDir()
	for name, pass := range map[string]string{"id_ed25519": "", "id_enc": "sesame"} {
		var block []byte
		if pass == "" {
			b, err := ssh.MarshalPrivateKey(r.userKey, "")
			if err != nil {
				t.Fatal(err)
			}
			block = pem.EncodeToMemory(b)
		} else {
			b, err := ssh.MarshalPrivateKeyWithPassphrase(r.userKey, "", []byte(pass))
			if err != nil {
				t.Fatal(err)
			}
			block = pem.EncodeToMemory(b)
		}
		os.WriteFile(filepath.Join(dir, name), block, 0o600)
	}
	// A default key file is found and used.
	signers := DefaultKeys(dir, false, nil, os.Stderr)
	if len(signers) != 1 {
		t.Fatalf("DefaultKeys found %d keys, want 1", len(signers))
	}
	r.cfg.Auth = &Auth{Signers: signers}
	if err := dialOnly(r); err != nil {
		t.Fatalf("dial with the default key: %v", err)
	}
	// An encrypted one asks its passphrase, or says why it cannot.
	enc := filepath.Join(dir, "id_enc")
	if _, err := LoadKeyFile(enc, nil); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted key without a prompt: %v", err)
	}
	asked := 0
	s, err := LoadKeyFile(enc, func(string) ([]byte, error) { asked++; return []byte("sesame"), nil })
	if err != nil || asked != 1 {
		t.Fatalf("encrypted key: %v, asked %d times", err, asked)
	}
	if _, err := LoadKeyFile(enc, func(string) ([]byte, error) { return []byte("wrong"), nil }); err == nil {
		t.Error("wrong passphrase accepted")
	}
	r.cfg.Auth = &Auth{Signers: []ssh.Signer{s}}
	if err := dialOnly(r); err != nil {
		t.Fatalf("dial with the decrypted key: %v", err)
	}
}

// startPasswordServer is deploytest.PasswordServer (see there) as a
// Target.
func startPasswordServer(t *testing.T, password string, kbdInteractive bool) (Target, string) {
	t.Helper()
	addr, known := deploytest.PasswordServer(t, password, kbdInteractive)
	tg, err := ParseTarget(addr)
	if err != nil {
		t.Fatal(err)
	}
	return tg, known
}

func TestPasswordAuth(t *testing.T) {
	for _, kbd := range []bool{true, false} {
		tg, known := startPasswordServer(t, "s3cret", kbd)
		var calls atomic.Int32
		auth := &Auth{Password: func() (string, error) { calls.Add(1); return "s3cret", nil }}
		cfg := &Config{KnownHosts: &KnownHosts{File: known}, Auth: auth, ConnectTimeout: 5 * time.Second}
		for range 2 {
			c, err := Dial(context.Background(), tg, cfg)
			if err != nil {
				t.Fatalf("keyboard-interactive=%v: dial: %v", kbd, err)
			}
			c.Close()
		}
		if calls.Load() != 1 {
			t.Errorf("keyboard-interactive=%v: password asked %d times over 2 connections, want 1", kbd, calls.Load())
		}
		wrong := &Config{KnownHosts: &KnownHosts{File: known}, Auth: &Auth{Password: func() (string, error) { return "guess", nil }}, ConnectTimeout: 5 * time.Second}
		if _, err := Dial(context.Background(), tg, wrong); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("keyboard-interactive=%v: wrong password: %v", kbd, err)
		}
	}
}

// TestKeyboardInteractiveAnswers: only hidden questions get the password,
// and only once per connection.
func TestKeyboardInteractiveAnswers(t *testing.T) {
	a := &Auth{Password: func() (string, error) { return "pw", nil }}
	ask := a.answer(noPause)
	if ans, err := ask("", "", nil, nil); err != nil || len(ans) != 0 {
		t.Errorf("no questions: %q, %v", ans, err)
	}
	if ans, err := ask("", "", []string{"Password: "}, []bool{false}); err != nil || len(ans) != 1 || ans[0] != "pw" {
		t.Errorf("password question: %q, %v", ans, err)
	}
	if _, err := ask("", "", []string{"Password: "}, []bool{false}); err == nil {
		t.Error("asked again: answered again")
	}
	if _, err := a.answer(noPause)("", "", []string{"Username: "}, []bool{true}); err == nil {
		t.Error("a visible question got the password")
	}
}

func noPause() func() { return func() {} }

// TestPasswordPromptPausesTimeout: a person typing the password at the
// prompt does not count against the connect timeout.
func TestPasswordPromptPausesTimeout(t *testing.T) {
	tg, known := startPasswordServer(t, "s3cret", true)
	slow := &Auth{Password: func() (string, error) { time.Sleep(600 * time.Millisecond); return "s3cret", nil }}
	cfg := &Config{KnownHosts: &KnownHosts{File: known}, Auth: slow, ConnectTimeout: 300 * time.Millisecond}
	c, err := Dial(context.Background(), tg, cfg)
	if err != nil {
		t.Fatalf("dial with a 600ms prompt and a 300ms connect timeout: %v", err)
	}
	c.Close()
}

// TestPasswordPromptPausesEveryConnection: hosts deployed to at once all
// wait for the one prompt; none counts the wait against its connect
// timeout, and the password is asked once.
func TestPasswordPromptPausesEveryConnection(t *testing.T) {
	tg, known := startPasswordServer(t, "s3cret", true)
	var calls atomic.Int32
	slow := &Auth{Password: func() (string, error) {
		calls.Add(1)
		time.Sleep(600 * time.Millisecond)
		return "s3cret", nil
	}}
	cfg := &Config{KnownHosts: &KnownHosts{File: known}, Auth: slow, ConnectTimeout: 300 * time.Millisecond}
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			c, err := Dial(context.Background(), tg, cfg)
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("dial while another connection's prompt waits: %v", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("password asked %d times, want 1", n)
	}
}
