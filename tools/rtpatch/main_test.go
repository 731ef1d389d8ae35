package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func localGOROOT(t *testing.T) string {
	t.Helper()
	root, err := goEnvGOROOT()
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	return root
}

// fakeGOROOT copies the files the patch reads from the local toolchain into
// a temporary tree with the given VERSION, so a test can break them.
func fakeGOROOT(t *testing.T, version string) string {
	t.Helper()
	src := localGOROOT(t)
	dst := t.TempDir()
	names := map[string]bool{}
	for _, e := range edits {
		names[e.file] = true
	}
	for _, r := range requires {
		names[r.file] = true
	}
	for name := range names {
		b, err := os.ReadFile(filepath.Join(src, "src", filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(dst, "src", filepath.FromSlash(name)), b)
	}
	writeTestFile(t, filepath.Join(dst, "VERSION"), []byte(version+"\ntime 2026-01-01T00:00:00Z\n"))
	return dst
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editFile(t *testing.T, path string, f func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, path, []byte(f(string(b))))
}

func readOverlay(t *testing.T, path string) Overlay {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ov Overlay
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ov); err != nil {
		t.Fatalf("overlay %s is not valid JSON: %v", path, err)
	}
	return ov
}

func TestWriteLocalGOROOT(t *testing.T) {
	root := localGOROOT(t)
	out := t.TempDir()
	path, err := Write(root, out)
	if err != nil {
		t.Fatalf("the patch does not apply to the local toolchain (%s): %v", GoVersion(root), err)
	}
	if want := filepath.Join(out, "overlay.json"); path != want {
		t.Errorf("overlay path = %s, want %s", path, want)
	}
	ov := readOverlay(t, path)
	editedFiles := map[string]bool{}
	for _, e := range edits {
		editedFiles[e.file] = true
	}
	if got, want := len(ov.Replace), len(editedFiles)+len(added); got != want {
		t.Errorf("overlay has %d entries, want %d: %v", got, want, ov.Replace)
	}
	isAdded := map[string]bool{}
	for _, a := range added {
		isAdded[filepath.Join(root, "src", filepath.FromSlash(a.file))] = true
	}
	for orig, patched := range ov.Replace {
		if !filepath.IsAbs(orig) || !filepath.IsAbs(patched) {
			t.Errorf("relative path in overlay: %s -> %s", orig, patched)
		}
		if !strings.HasPrefix(patched, out+string(filepath.Separator)) {
			t.Errorf("patched file %s outside the output folder %s", patched, out)
		}
		if _, err := os.Stat(patched); err != nil {
			t.Errorf("patched file missing: %v", err)
		}
		_, err := os.Stat(orig)
		switch {
		case isAdded[orig] && err == nil:
			t.Errorf("added file %s already exists in GOROOT", orig)
		case !isAdded[orig] && err != nil:
			t.Errorf("replaced file does not exist: %v", err)
		}
	}

	for _, e := range edits {
		b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(e.file)))
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		if strings.Contains(got, e.old) {
			t.Errorf("patched %s still contains %q", e.file, e.old)
		}
		if !strings.Contains(got, e.new) {
			t.Errorf("patched %s lacks %q", e.file, e.new)
		}
		if !strings.HasSuffix(got, patchedMarker) {
			t.Errorf("patched %s does not end with the marker", e.file)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(netpollFile)))
	if err != nil {
		t.Fatal(err)
	}

	// Running again over the same folder gives the same result.
	if _, err := Write(root, out); err != nil {
		t.Fatalf("second run: %v", err)
	}
	b2, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(netpollFile)))
	if !bytes.Equal(b, b2) {
		t.Error("second run changed the patched file")
	}
}

func TestPatchRefusesChangedSource(t *testing.T) {
	const version = "go1.99.3"
	tests := []struct {
		name    string
		file    string
		breakIt func(root string) // changes the fake GOROOT
		want    []string          // in the error message, besides the version
	}{
		{
			name: "anchor missing",
			file: netpollFile,
			breakIt: func(root string) {
				editFile(t, filepath.Join(root, "src", netpollFile), func(s string) string {
					return strings.Replace(s, edits[5].old, "\tn, errno := linux.EpollWait2(epfd, events[:], int32(len(events)), waitms)\n", 1)
				})
			},
			want: []string{netpollFile, "found 0 times", "EpollWait(epfd"},
		},
		{
			name: "anchor twice",
			file: netpollFile,
			breakIt: func(root string) {
				editFile(t, filepath.Join(root, "src", netpollFile), func(s string) string {
					return s + "\nfunc dup() {\n" + edits[0].old + "}\n"
				})
			},
			want: []string{netpollFile, "found 2 times", "EpollCreate1"},
		},
		{
			name: "sysmon anchor missing",
			file: sysmonEdit.file,
			breakIt: func(root string) {
				editFile(t, filepath.Join(root, "src", filepath.FromSlash(sysmonEdit.file)), func(s string) string {
					return strings.Replace(s, sysmonEdit.old, "\t\t} else if idle > 60 {\n", 1)
				})
			},
			want: []string{sysmonEdit.file, "found 0 times", "idle > 50"},
		},
		{
			name: "required helper gone",
			breakIt: func(root string) {
				editFile(t, filepath.Join(root, "src", "runtime", "os_unix.go"), func(s string) string {
					return strings.Replace(s, "func closeonexec(fd int32)", "func closeOnExec(fd int32)", 1)
				})
			},
			want: []string{"runtime/os_unix.go", "closeonexec"},
		},
		{
			name: "file to add exists",
			breakIt: func(root string) {
				writeTestFile(t, filepath.Join(root, "src", filepath.FromSlash(added[0].file)), []byte("package runtime\n"))
			},
			want: []string{added[0].file, "already exists"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeGOROOT(t, version)
			tt.breakIt(root)
			out := t.TempDir()
			_, err := Write(root, out)
			if !errors.Is(err, ErrSourceChanged) {
				t.Fatalf("Write = %v, want ErrSourceChanged", err)
			}
			for _, w := range append([]string{version}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "overlay.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("overlay.json written despite the refusal (stat: %v)", err)
			}
		})
	}
}

func TestRunExitStatus(t *testing.T) {
	root := fakeGOROOT(t, "go1.99.3")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-goroot", root, "-out", t.TempDir()}, &stdout, &stderr); code != 0 {
		t.Fatalf("run on an intact tree = %d, stderr: %s", code, stderr.String())
	}
	if !strings.HasSuffix(strings.TrimSpace(stdout.String()), "overlay.json") {
		t.Errorf("stdout = %q, want the overlay path", stdout.String())
	}

	editFile(t, filepath.Join(root, "src", netpollFile), func(s string) string {
		return strings.Replace(s, edits[1].old, "", 1)
	})
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"-goroot", root, "-out", t.TempDir()}, &stdout, &stderr); code != 1 {
		t.Fatalf("run on a changed tree = %d, want 1", code)
	}
	for _, w := range []string{"go1.99.3", netpollFile, "anchor", "docs/esxi.md"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr %q does not mention %q", stderr.String(), w)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing on failure", stdout.String())
	}
}

func TestGoVersion(t *testing.T) {
	dir := t.TempDir()
	if got := GoVersion(dir); !strings.Contains(got, "unknown") {
		t.Errorf("GoVersion without VERSION = %q, want it to say unknown", got)
	}
	writeTestFile(t, filepath.Join(dir, "VERSION"), []byte("go1.26.8\ntime x\n"))
	if got := GoVersion(dir); got != "go1.26.8" {
		t.Errorf("GoVersion = %q, want go1.26.8", got)
	}
}

// TestOverlayCompiles builds the probe with the overlay for the shipped
// target and for arm64, whose runtime has no legacy calls to fall back to.
func TestOverlayCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the runtime twice")
	}
	root := localGOROOT(t)
	path, err := Write(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "build", "-overlay", path, "-o", os.DevNull, "../esxiprobe")
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build GOARCH=%s with the overlay: %v\n%s", arch, err, out)
			}
		})
	}
}
