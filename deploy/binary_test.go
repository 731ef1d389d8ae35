package deploy

import (
	"crypto/sha256"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/internal/deploytest"
)

func TestCheckBinary(t *testing.T) {
	dir := t.TempDir()
	good := deploytest.ELF{Marker: true, Payload: "heapguard"}
	p := good.Write(t, dir, "good")
	b, err := CheckBinary(p)
	if err != nil {
		t.Fatalf("CheckBinary(ESXi-ready): %v", err)
	}
	if want := sha256.Sum256(good.Bytes()); b.SHA256 != want || b.Size != int64(len(good.Bytes())) || b.Path != p {
		t.Errorf("CheckBinary = %+v", b)
	}
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte("#!/bin/sh\necho "+deploytest.Marker+"\n"), 0o755)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"stock runtime", deploytest.ELF{Payload: "heapguard"}.Write(t, dir, "stock"), "stock Go runtime"},
		{"dynamic", deploytest.ELF{Marker: true, Interp: true}.Write(t, dir, "dyn"), `interpreter "/lib64/ld-linux-x86-64.so.2"`},
		{"dynamic segment", deploytest.ELF{Marker: true, Dynamic: true}.Write(t, dir, "dynseg"), "dynamic segment"},
		{"arm64", deploytest.ELF{Marker: true, Machine: elf.EM_AARCH64}.Write(t, dir, "arm"), "EM_AARCH64"},
		{"pie", deploytest.ELF{Marker: true, Type: elf.ET_DYN}.Write(t, dir, "pie"), "ET_DYN"},
		{"32-bit", deploytest.ELF{Marker: true, Class32: true}.Write(t, dir, "i386"), "ELF"},
		{"script", script, "not an ELF file"},
	} {
		_, err := CheckBinary(tc.path)
		if !errors.Is(err, ErrNotESXiBinary) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrNotESXiBinary saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := CheckBinary(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent: %v", err)
	}
	// The test binary itself: a real Go build with the stock runtime.
	self, _ := os.Executable()
	if _, err := CheckBinary(self); !errors.Is(err, ErrNotESXiBinary) {
		t.Errorf("the stock test binary: %v; want ErrNotESXiBinary", err)
	}
}
