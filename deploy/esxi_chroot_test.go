package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/heapguard/heapguard/internal/deploytest"
)

// chrootRig is a rig whose sshd is a simulated ESXi host of that version
// (deploytest.StartESXi): sessions run chrooted in its root with a
// busybox shell; dest is a folder on its datastore, a path inside the
// root (e.Host.Path maps it to this machine's).
func chrootRig(t *testing.T, version string) (*rig, *deploytest.ESXi) {
	t.Helper()
	userKey, user := newUserKey(t)
	e := deploytest.StartESXi(t, deploytest.ESXiOptions{Version: version, SSH: deploytest.Options{
		HostKeys: []string{"ed25519"}, Authorized: []ssh.PublicKey{user.PublicKey()},
	}})
	r := &rig{t: t, srv: e.Server, userKey: userKey, known: filepath.Join(t.TempDir(), "known_hosts"), dest: "/vmfs/volumes/datastore1/heapguard"}
	if err := os.WriteFile(r.known, []byte(e.KnownHostsLine("ed25519")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.target, err = ParseTarget(e.Addr); err != nil {
		t.Fatal(err)
	}
	r.cfg = &Config{
		User:           "root",
		KnownHosts:     &KnownHosts{File: r.known},
		Auth:           &Auth{Signers: []ssh.Signer{user}},
		ConnectTimeout: 10 * time.Second,
		CommandTimeout: 10 * time.Second,
		CopyTimeout:    10 * time.Second,
	}
	r.bin = r.binary("v1")
	return r, e
}

// TestInstallIntoChrootedESXi is a smoke test of the chrooted host: the
// probe, the copy and the read-back run with busybox as the shell.
func TestInstallIntoChrootedESXi(t *testing.T) {
	for _, v := range []string{"5.5", "8.0"} {
		t.Run(v, func(t *testing.T) {
			r, e := chrootRig(t, v)
			res, err := r.deploy()
			if err != nil || res.Action != Installed {
				t.Fatalf("deploy: %+v, %v", res, err)
			}
			got, err := os.ReadFile(e.Host.Path(r.dest + "/" + BinaryName))
			if err != nil || len(got) == 0 {
				t.Fatalf("installed file: %d bytes, %v", len(got), err)
			}
			if res.Probe == nil || !strings.HasPrefix(res.Probe.Version, "ESXi "+e.Version.Full) || res.Probe.FreeBytes <= 0 {
				t.Errorf("probe %+v", res.Probe)
			}
			t.Logf("%s: %q, warnings %q", v, res.Lines(), res.Warnings)
		})
	}
}
