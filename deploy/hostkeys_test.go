package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/internal/deploytest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dialOnly(r *rig) error {
	c, err := Dial(context.Background(), r.target, r.cfg)
	if err == nil {
		c.Close()
	}
	return err
}

func TestUnknownHostRefusedWithFingerprint(t *testing.T) {
	r := newRig(t, []string{"ecdsa"}, nil)
	err := dialOnly(r)
	fp := ssh.FingerprintSHA256(r.srv.HostKeys["ecdsa"])
	if !errors.Is(err, ErrUnknownHost) || !strings.Contains(err.Error(), fp) || !strings.Contains(err.Error(), "ecdsa-sha2-nistp256") {
		t.Fatalf("dial unknown host: %v; want ErrUnknownHost naming ecdsa-sha2-nistp256 %s", err, fp)
	}
	if b, _ := os.ReadFile(r.known); len(b) != 0 {
		t.Errorf("known_hosts written without --accept-new: %q", b)
	}
	// A known_hosts file that does not exist is an empty one.
	r.cfg.KnownHosts.File = filepath.Join(t.TempDir(), "absent")
	if err := dialOnly(r); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("dial with no known_hosts file: %v; want ErrUnknownHost", err)
	}
}

func TestAcceptNewWritesKnownHosts(t *testing.T) {
	r := newRig(t, []string{"ed25519"}, nil)
	// A last line without its newline must not be glued to the new one.
	other := "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	os.WriteFile(r.known, []byte(other), 0o600)
	var log bytes.Buffer
	r.cfg.KnownHosts.AcceptNew = true
	r.cfg.KnownHosts.Log = &log
	if err := dialOnly(r); err != nil {
		t.Fatalf("dial with --accept-new: %v", err)
	}
	b, _ := os.ReadFile(r.known)
	want := other + "\n" + r.srv.KnownHostsLine("ed25519") + "\n"
	if string(b) != want {
		t.Errorf("known_hosts = %q, want %q", b, want)
	}
	if !strings.Contains(log.String(), ssh.FingerprintSHA256(r.srv.HostKeys["ed25519"])) || !strings.Contains(log.String(), "not hashed") {
		t.Errorf("log %q: want the fingerprint and that the name is not hashed", log.String())
	}
	// Now known: strict mode lets it in, and nothing more is added.
	r.cfg.KnownHosts.AcceptNew = false
	if err := dialOnly(r); err != nil {
		t.Fatalf("dial after --accept-new: %v", err)
	}
	if b2, _ := os.ReadFile(r.known); !bytes.Equal(b, b2) {
		t.Errorf("known_hosts changed on the second connection: %q", b2)
	}
}

func TestChangedHostKeyRefusedEvenWithAcceptNew(t *testing.T) {
	r := newRig(t, []string{"ed25519"}, nil)
	// known_hosts holds another ed25519 key for this host, on line 2.
	old := deploytest.WriteKey(t, filepath.Join(t.TempDir(), "old"), "ed25519")
	line := fmt.Sprintf("# first line\n[127.0.0.1]:%d %s", r.srv.Port, ssh.MarshalAuthorizedKey(old))
	os.WriteFile(r.known, []byte(line), 0o600)
	for _, accept := range []bool{false, true} {
		r.cfg.KnownHosts.AcceptNew = accept
		err := dialOnly(r)
		if !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), r.known+":2") ||
			!strings.Contains(err.Error(), ssh.FingerprintSHA256(r.srv.HostKeys["ed25519"])) {
			t.Errorf("accept-new=%v: %v; want ErrHostKeyChanged naming %s:2 and the new key", accept, err, r.known)
		}
	}
	if b, _ := os.ReadFile(r.known); string(b) != line {
		t.Errorf("known_hosts changed: %q", b)
	}
}

// TestHostKeyAlgorithmsFromKnownHosts: the server has ed25519 and ecdsa
// keys; known_hosts holds only one of them. Asking for the known type gets
// in either way; x/crypto's default order asks for ecdsa first, so with
// only ed25519 known the server would show ecdsa and the check would fail
// though a valid key is known (golang/go#49631).
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	r := newRig(t, []string{"ed25519", "ecdsa"}, []string{"ecdsa"})
	if err := dialOnly(r); err != nil {
		t.Fatalf("dial with only the ecdsa key known: %v", err)
	}
	// And the same server with only ed25519 known.
	os.WriteFile(r.known, []byte(r.srv.KnownHostsLine("ed25519")+"\n"), 0o600)
	if err := dialOnly(r); err != nil {
		t.Fatalf("dial with only the ed25519 key known: %v", err)
	}
	// And known under a hashed name (HashKnownHosts yes).
	hashed := knownhosts.Line([]string{knownhosts.HashHostname(knownhosts.Normalize(r.srv.Addr))}, r.srv.HostKeys["ed25519"])
	os.WriteFile(r.known, []byte(hashed+"\n"), 0o600)
	if err := dialOnly(r); err != nil {
		t.Fatalf("dial with the ed25519 key known under a hashed name: %v", err)
	}
}

// TestHostOffersNoKnownType: known_hosts holds an ecdsa key, the server
// has only ed25519: refused as a changed key, naming the types.
func TestHostOffersNoKnownType(t *testing.T) {
	r := newRig(t, []string{"ed25519"}, nil)
	old := deploytest.WriteKey(t, filepath.Join(t.TempDir(), "old"), "ecdsa")
	os.WriteFile(r.known, fmt.Appendf(nil, "[127.0.0.1]:%d %s", r.srv.Port, ssh.MarshalAuthorizedKey(old)), 0o600)
	r.cfg.KnownHosts.AcceptNew = true
	if err := dialOnly(r); !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), "ecdsa-sha2-nistp256") {
		t.Errorf("dial: %v; want ErrHostKeyChanged naming ecdsa-sha2-nistp256", err)
	}
}

func TestHostKeyAlgorithmsTable(t *testing.T) {
	r := newRig(t, []string{"ecdsa"}, []string{"ecdsa"})
	db, err := r.cfg.KnownHosts.load()
	if err != nil {
		t.Fatal(err)
	}
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: r.srv.Port}
	known, err := knownKeys(db, r.srv.Addr, loop)
	if err != nil || len(known) != 1 {
		t.Fatalf("known keys: %v %v", known, err)
	}
	if got := hostKeyAlgorithms(known, false); strings.Join(got, ",") != "ecdsa-sha2-nistp256" {
		t.Errorf("algorithms = %q", got)
	}
	unknown, err := knownKeys(db, "127.0.0.1:1", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	if err != nil || len(unknown) != 0 || hostKeyAlgorithms(unknown, false) != nil {
		t.Errorf("unknown host: %v %v; want no keys and no algorithm restriction", unknown, err)
	}
}

// TestLegacyAlgorithms: sshds set up like an old ESXi, each with one
// weak algorithm only (SHA-1 key exchange, CBC cipher, ssh-rsa host key
// signatures), are reached only with LegacyAlgorithms.
func TestLegacyAlgorithms(t *testing.T) {
	r := newRig(t, []string{"rsa"}, []string{"rsa"})
	for _, tc := range []struct{ config, want string }{
		{"KexAlgorithms diffie-hellman-group14-sha1", "no common algorithm for key exchange"},
		{"Ciphers aes128-cbc", "cipher"},
		{"HostKeyAlgorithms ssh-rsa", "no common algorithm for host key"},
	} {
		old := deploytest.Start(t, deploytest.Options{
			HostKeys:   []string{"rsa"},
			Authorized: []ssh.PublicKey{r.cfg.Auth.Signers[0].PublicKey()},
			Config:     tc.config + "\n",
		})
		r.target, _ = ParseTarget(old.Addr)
		os.WriteFile(r.known, []byte(old.KnownHostsLine("rsa")+"\n"), 0o600)
		r.cfg.LegacyAlgorithms = false
		if err := dialOnly(r); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--legacy-algorithms") || errors.Is(err, ErrHostKeyChanged) {
			t.Errorf("%s without legacy algorithms: %v; want %q and a hint at --legacy-algorithms", tc.config, err, tc.want)
		}
		r.cfg.LegacyAlgorithms = true
		if err := dialOnly(r); err != nil {
			t.Errorf("%s with legacy algorithms: %v", tc.config, err)
		}
	}
}
