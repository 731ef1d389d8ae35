package deploy

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/deploytest"
	"golang.org/x/crypto/ssh"
)

// rig is a real sshd standing for one ESXi host, a client key it accepts,
// a known_hosts file and a destination folder.
type rig struct {
	t       *testing.T
	srv     *deploytest.Server
	userKey ed25519.PrivateKey // the key sshd accepts
	target  Target
	known   string
	cfg     *Config
	dest    string
	bin     Binary
}

func newUserKey(t *testing.T) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, s
}

// newRig starts sshd with hostKeys ("ed25519", "ecdsa"); known_hosts holds
// the keys of knownTypes.
func newRig(t *testing.T, hostKeys, knownTypes []string) *rig {
	t.Helper()
	return newRigOpts(t, knownTypes, deploytest.Options{HostKeys: hostKeys})
}

// newRigOpts is newRig with sshd's options given (its authorized key is
// added).
func newRigOpts(t *testing.T, knownTypes []string, o deploytest.Options) *rig {
	t.Helper()
	userKey, user := newUserKey(t)
	o.Authorized = append(o.Authorized, user.PublicKey())
	srv := deploytest.Start(t, o)
	dir := t.TempDir()
	r := &rig{t: t, srv: srv, userKey: userKey, known: filepath.Join(dir, "known_hosts"), dest: filepath.Join(dir, "host", "heapguard dir")}
	var lines []string
	for _, typ := range knownTypes {
		lines = append(lines, srv.KnownHostsLine(typ)+"\n")
	}
	if err := os.WriteFile(r.known, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.target, err = ParseTarget(srv.Addr); err != nil {
		t.Fatal(err)
	}
	r.cfg = &Config{
		User:           currentUser(t),
		KnownHosts:     &KnownHosts{File: r.known},
		Auth:           &Auth{Signers: []ssh.Signer{user}},
		ConnectTimeout: 10 * time.Second,
		CommandTimeout: 10 * time.Second,
		CopyTimeout:    10 * time.Second,
	}
	r.bin = r.binary("v1")
	return r
}

func currentUser(t *testing.T) string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if os.Geteuid() == 0 {
		return "root"
	}
	t.Skip("cannot tell the current user's name")
	return ""
}

// binary writes and checks an ESXi-ready ELF whose payload is payload
// (padded so that a copy takes many SSH packets).
func (r *rig) binary(payload string) Binary {
	r.t.Helper()
	p := deploytest.ELF{Marker: true, Payload: payload + strings.Repeat("x", 300<<10)}.Write(r.t, r.t.TempDir(), "heapguard-"+payload)
	b, err := CheckBinary(p)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *rig) deploy() (Result, error) {
	r.t.Helper()
	ctx := context.Background()
	c, err := Dial(ctx, r.target, r.cfg)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	return Install(ctx, c, r.bin, InstallOptions{Dest: r.dest})
}

// installed is the SHA-256 of the final file, "" if absent.
func (r *rig) installed() string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dest, BinaryName))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// partials are the temporary copies left in the destination.
func (r *rig) partials() []string {
	m, _ := filepath.Glob(filepath.Join(r.dest, tempPrefix+"*"+tempSuffix))
	return m
}

func TestInstallKeyAuthIdempotentUpgrade(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519", "ecdsa"})
	res, err := r.deploy()
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	final := filepath.Join(r.dest, BinaryName)
	if res.Action != Installed || res.SHA256 != r.bin.Sum() || res.Path != final {
		t.Errorf("first deploy = %+v, want installed %s at %s", res, r.bin.Sum(), final)
	}
	if got := r.installed(); got != r.bin.Sum() {
		t.Fatalf("installed sha256 %q, want %s", got, r.bin.Sum())
	}
	st, err := os.Stat(final)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("installed mode: %v %v, want 0755", st.Mode(), err)
	}
	if p := r.partials(); len(p) > 0 {
		t.Errorf("partial copies left: %q", p)
	}

	// Again: nothing sent, the file untouched (same inode).
	before := inode(t, final)
	res, err = r.deploy()
	if err != nil || res.Action != Unchanged || res.SHA256 != r.bin.Sum() {
		t.Fatalf("second deploy = %+v, %v; want unchanged", res, err)
	}
	if inode(t, final) != before {
		t.Error("second deploy replaced the file")
	}

	// Another binary replaces it.
	r.bin = r.binary("v2")
	res, err = r.deploy()
	if err != nil || res.Action != Upgraded || res.SHA256 != r.bin.Sum() {
		t.Fatalf("upgrade = %+v, %v; want upgraded to %s", res, err, r.bin.Sum())
	}
	if got := r.installed(); got != r.bin.Sum() {
		t.Errorf("after upgrade: sha256 %q, want %s", got, r.bin.Sum())
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}
