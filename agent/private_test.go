package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/remediate"
)

// TestOpenRefusesUnsafeStateDir: a state folder on the simulated host's
// datastore (heapguard-state/<host> beside the binary, 0755 datastore
// folders above it) is made 0700 with a 0600 journal and accepted. Made
// writable by others it is refused, naming the path and the fix, before
// anything is journaled; chmod go-w makes it acceptable again. A dry run
// acts on nothing: it warns and goes on.
func TestOpenRefusesUnsafeStateDir(t *testing.T) {
	h := newSim(t, "seed-incident")
	dir := filepath.Join(h.Root(), "vmfs/volumes/datastore1/heapguard/heapguard-state/esx01")
	opt := agentOptions(h, dir, esxsim.NewStepClock(h.Root()))
	w, err := Open(opt)
	if err != nil {
		t.Fatalf("a datastore state folder made by heapguard: %v", err)
	}
	w.Close()
	journal := filepath.Join(dir, remediate.JournalFile)
	for p, want := range map[string]os.FileMode{dir: 0o700, journal: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want mode %04o", p, fi.Mode(), err, want)
		}
	}
	before, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}

	hostDir := host.Path(h.Root(), remediate.HostDir)
	for _, c := range []struct {
		name, path string
		mode       os.FileMode
	}{
		{"state folder world-writable", dir, 0o777},
		{"state folder group-writable", dir, 0o770},
		{"journal world-writable", journal, 0o666},
		{"host lock folder world-writable", hostDir, 0o777},
	} {
		t.Run(c.name, func(t *testing.T) {
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(c.path, c.mode); err != nil {
				t.Fatal(err)
			}
			_, err = Open(opt)
			if !errors.Is(err, remediate.ErrUnsafeState) {
				t.Fatalf("Open: %v, want ErrUnsafeState", err)
			}
			for _, s := range []string{c.path, "chmod go-w"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if after, _ := os.ReadFile(journal); string(after) != string(before) {
				t.Errorf("the refused instance wrote the journal")
			}

			// A dry run warns and goes on.
			core, logs := observer.New(zapcore.WarnLevel)
			dry := opt
			dry.DryRun, dry.Logger = true, zap.New(core)
			if c.path != hostDir {
				w, err := Open(dry)
				if err != nil {
					t.Fatalf("dry run: %v", err)
				}
				w.Close()
				if logs.FilterMessageSnippet("the state folder is not private").Len() != 1 {
					t.Errorf("dry run did not warn: %v", logs.All())
				}
			}

			// What the error says fixes it (chmod go-w).
			if err := os.Chmod(c.path, c.mode&^0o022); err != nil {
				t.Fatal(err)
			}
			w, err := Open(opt)
			if err != nil {
				t.Fatalf("after chmod go-w: %v", err)
			}
			w.Close()
			os.Chmod(c.path, fi.Mode().Perm())
			before, _ = os.ReadFile(journal)
		})
	}
}
