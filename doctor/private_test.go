package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// TestDoctorPermissions: doctor fails a state folder, a journal or a host
// lock folder that others can write, naming the path and the fix, and
// passes a private one.
func TestDoctorPermissions(t *testing.T) {
	h := esxsim.New(t, esxsim.Incident(), esxsim.WithBinary(esxsim.BuildBinary(t)))
	state := filepath.Join(h.Root(), "vmfs/volumes/datastore1/heapguard/heapguard-state/esx01")
	hostDir := host.Path(h.Root(), remediate.HostDir)
	if err := os.MkdirAll(hostDir, 0o700); err != nil {
		t.Fatal(err)
	}
	permissions := func() Finding {
		t.Helper()
		d := Run(context.Background(), Options{Root: h.Root(), StateDir: state, Runner: esxsim.Runner{Root: h.Root()}})
		for _, f := range d.Findings {
			if f.Check == "permissions" {
				return f
			}
		}
		t.Fatal("no permissions finding")
		return Finding{}
	}
	if f := permissions(); f.Level != policy.OK {
		t.Fatalf("a state folder doctor made: %+v", f)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state folder made %v, %v: want 0700", fi.Mode(), err)
	}
	journal := filepath.Join(state, remediate.JournalFile)
	if err := os.WriteFile(journal, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{state, journal, hostDir} {
		fi, _ := os.Stat(p)
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
		f := permissions()
		if f.Level != policy.Crit || !strings.Contains(f.Detail, p) || !strings.Contains(f.Detail, "chmod go-w") {
			t.Errorf("%s 0777: %+v, want a failure naming it and chmod go-w", p, f)
		}
		os.Chmod(p, fi.Mode().Perm())
	}
}
