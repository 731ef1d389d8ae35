package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var heapguardBuilds struct {
	sync.Mutex
	dir     string
	overlay string
	paths   map[string]string
}

// BuildHeapguard builds cmd/heapguard as make build does (static, with the
// ESXi-safe runtime of tools/rtpatch, so deploy accepts it) once per test
// process and version, and returns its path. Different versions give
// different binaries (-X main.version), for upgrades.
func BuildHeapguard(t testing.TB, version string) string {
	t.Helper()
	b := &heapguardBuilds
	b.Lock()
	defer b.Unlock()
	if p, ok := b.paths[version]; ok {
		return p
	}
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if b.dir == "" {
		dir, err := os.MkdirTemp("", "heapguard-bin-")
		if err != nil {
			t.Fatal(err)
		}
		root := goCmd("list", "-m", "-f", "{{.Dir}}")
		cmd := exec.Command("go", "run", "./tools/rtpatch", "-out", filepath.Join(dir, "overlay"))
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tools/rtpatch: %v\n%s", err, out)
		}
		b.dir, b.overlay, b.paths = dir, filepath.Join(dir, "overlay", "overlay.json"), map[string]string{}
	}
	p := filepath.Join(b.dir, "heapguard-"+version)
	goCmd("build", "-overlay", b.overlay, "-trimpath", "-tags", "nethttpomithttp2",
		"-ldflags", "-s -w -X main.version="+version, "-o", p, "github.com/heapguard/heapguard/cmd/heapguard")
	b.paths[version] = p
	return p
}
