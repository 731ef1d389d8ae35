package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/internal/deploytest"
	"golang.org/x/crypto/ssh"
)

// TestDeployProbeOnly: over a real sshd whose sessions find esxsim's tools
// on PATH, --probe-only prints the probe and what it would do and creates
// nothing; an execInstalledOnly host is refused (exit 2) with the reason
// and, without --probe-only, nothing is copied either.
func TestDeployProbeOnly(t *testing.T) {
	// Build the simulator before deployEnv moves HOME, and with it Go's
	// build cache (a cold cache costs half a minute).
	esxsim.BuildBinary(t)
	deployEnv(t)
	dir := t.TempDir()
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(userKey)
	block, _ := ssh.MarshalPrivateKey(userKey, "")
	keyFile := filepath.Join(dir, "id_test")
	os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)
	binPath := deploytest.ELF{Marker: true, Payload: strings.Repeat("heapguard", 1000)}.Write(t, dir, "heapguard")
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	for _, tc := range []struct {
		scenario string
		code     int
		want     []string
	}{
		{"esx80", exitOK, []string{"ESXi 8.0", "execInstalledOnly runtime FALSE boot FALSE", "  probed  would install to "}},
		{"esx80-eio", exitCritical, []string{"ESXi 8.0", "execInstalledOnly runtime TRUE boot TRUE", "  failed  heapguard would not run on this host", "deploy --vib"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			h := simHost(t, tc.scenario)
			srv := deploytest.Start(t, deploytest.Options{
				HostKeys:   []string{"ecdsa"},
				Authorized: []ssh.PublicKey{signer.PublicKey()},
				Env:        []string{"PATH=" + h.Path("/bin") + ":/usr/bin:/bin", "ESXSIM_ROOT=" + h.Root()},
			})
			known := filepath.Join(t.TempDir(), "known_hosts")
			os.WriteFile(known, []byte(srv.KnownHostsLine("ecdsa")+"\n"), 0o600)
			dest := filepath.Join(t.TempDir(), "datastore1", "heapguard")
			args := []string{"deploy", "-i", keyFile, "--known-hosts", known, "--binary", binPath, "--dest", dest, "--user", user}

			code, out, stderr := runCLI(t, append(args, "--probe-only", srv.Addr)...)
			if code != tc.code {
				t.Errorf("--probe-only: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("--probe-only output lacks %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(filepath.Dir(dest)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("--probe-only made %s: %v", filepath.Dir(dest), err)
			}
			if tc.code == exitOK {
				return
			}
			code, out, _ = runCLI(t, append(args, srv.Addr)...)
			if code != exitCritical || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("deploy to %s: exit %d\n%s", tc.scenario, code, out)
			}
			if _, err := os.Stat(filepath.Dir(dest)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused deploy made %s: %v", filepath.Dir(dest), err)
			}
		})
	}
}
