// Command rtpatch writes a `go build -overlay` that makes the Go runtime
// survive VMware ESXi, whose kernel answers ENOSYS to epoll_pwait (and, we
// assume, to epoll_create1 and eventfd2). It reads the local toolchain's own
// runtime source, applies exact, anchored text edits, adds three files with
// the fallbacks, and prints the path of the overlay JSON:
//
//	go run ./tools/rtpatch -out build/_overlay
//	go build -overlay build/_overlay/overlay.json ./cmd/heapguard
//
// When the source does not look as expected (an anchor missing or found
// twice, a file to add already present), rtpatch exits 1 naming the Go
// version, the file and the anchor, so a toolchain bump can never ship an
// unpatched binary silently. docs/esxi.md says what to do then.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrSourceChanged means the toolchain's runtime source is not the one the
// patch was written for.
var ErrSourceChanged = errors.New("runtime source changed")

// Overlay is the file format of `go build -overlay`.
type Overlay struct {
	Replace map[string]string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtpatch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "build/_overlay", "folder for the patched files and overlay.json")
	goroot := fs.String("goroot", "", "Go tree to patch (default: `go env GOROOT`)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "rtpatch: unexpected arguments %q\n", fs.Args())
		return 2
	}
	root := *goroot
	if root == "" {
		r, err := goEnvGOROOT()
		if err != nil {
			fmt.Fprintf(stderr, "rtpatch: %v\n", err)
			return 1
		}
		root = r
	}
	path, err := Write(root, *out)
	if err != nil {
		fmt.Fprintf(stderr, "rtpatch: %v\n", err)
		if errors.Is(err, ErrSourceChanged) {
			fmt.Fprintln(stderr, "rtpatch: refusing to build an unpatched ESXi binary; see docs/esxi.md, \"After a Go toolchain bump\"")
		}
		return 1
	}
	fmt.Fprintln(stdout, path)
	return 0
}

// goEnvGOROOT asks the go command on PATH where its tree is, which is the
// tree `go build` will compile the runtime from.
func goEnvGOROOT() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "env", "GOROOT")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	root := strings.TrimSpace(string(out))
	if root == "" {
		return "", errors.New("go env GOROOT: empty answer")
	}
	return root, nil
}

// GoVersion reads the toolchain version from GOROOT/VERSION ("go1.26.8"),
// for error messages.
func GoVersion(goroot string) string {
	b, err := os.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		return "unknown Go version (no " + filepath.Join(goroot, "VERSION") + ")"
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return "unknown Go version (empty VERSION file)"
	}
	return line
}

// Patch applies the edits to the runtime under goroot and returns the new
// content of every file to overlay, keyed by slash path under GOROOT/src.
func Patch(goroot string) (map[string][]byte, error) {
	version := GoVersion(goroot)
	src := filepath.Join(goroot, "src")
	files := map[string][]byte{}
	read := func(name string) ([]byte, error) {
		if b, ok := files[name]; ok {
			return b, nil
		}
		b, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", version, name, err)
		}
		return b, nil
	}

	for _, r := range requires {
		b, err := read(r.file)
		if err != nil {
			return nil, err
		}
		if !bytes.Contains(b, []byte(r.text)) {
			return nil, fmt.Errorf("%s: %s: required text %q not found: %w", version, r.file, r.text, ErrSourceChanged)
		}
	}

	// Edits to one file apply in order, each to the result of the last.
	edited := map[string]bool{}
	for _, e := range edits {
		b, err := read(e.file)
		if err != nil {
			return nil, err
		}
		if n := bytes.Count(b, []byte(e.old)); n != 1 {
			return nil, fmt.Errorf("%s: %s: anchor %q found %d times, want exactly 1: %w", version, e.file, e.old, n, ErrSourceChanged)
		}
		files[e.file] = bytes.Replace(b, []byte(e.old), []byte(e.new), 1)
		edited[e.file] = true
	}
	out := map[string][]byte{}
	for name := range edited {
		out[name] = append(files[name], patchedMarker...)
	}

	for _, a := range added {
		p := filepath.Join(src, filepath.FromSlash(a.file))
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s: %s already exists in the Go tree, the overlay would replace it: %w", version, a.file, ErrSourceChanged)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: check %s: %w", version, a.file, err)
		}
		out[a.file] = []byte(a.content)
	}
	return out, nil
}

// Write patches the runtime under goroot, writes the patched files below
// outDir and outDir/overlay.json, and returns the absolute path of the JSON.
// Paths in the JSON are absolute: the go command resolves relative ones
// against its own working folder, not the JSON's.
func Write(goroot, outDir string) (string, error) {
	absRoot, err := filepath.Abs(goroot)
	if err != nil {
		return "", fmt.Errorf("resolve GOROOT %s: %w", goroot, err)
	}
	absOut, err := filepath.Abs(outDir)
	if err != nil {
		return "", fmt.Errorf("resolve output folder %s: %w", outDir, err)
	}
	files, err := Patch(absRoot)
	if err != nil {
		return "", err
	}
	ov := Overlay{Replace: map[string]string{}}
	for name, b := range files {
		dst := filepath.Join(absOut, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
		}
		if err := writeFile(dst, b); err != nil {
			return "", err
		}
		ov.Replace[filepath.Join(absRoot, "src", filepath.FromSlash(name))] = dst
	}
	j, err := json.MarshalIndent(ov, "", "\t")
	if err != nil {
		return "", fmt.Errorf("encode overlay: %w", err)
	}
	path := filepath.Join(absOut, "overlay.json")
	if err := writeFile(path, append(j, '\n')); err != nil {
		return "", err
	}
	return path, nil
}

// writeFile replaces dst through a temporary file, so a build running at
// the same time never reads half a file.
func writeFile(dst string, b []byte) error {
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
