package deploy

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/heapguard/heapguard/doctor"
)

// ErrNotESXiBinary marks a file deploy refuses to send: ESXi would not run
// it (not a static linux/amd64 ELF) or its Go runtime would die there (no
// ESXi-safe runtime marker).
var ErrNotESXiBinary = errors.New("not a heapguard binary for ESXi")

// maxBinarySize bounds what is read and sent; heapguard is about 8 MB.
const maxBinarySize = 256 << 20

// Binary is a checked local file ready to send.
type Binary struct {
	Path   string
	Size   int64
	SHA256 [sha256.Size]byte
}

// Sum is the SHA-256 in hex.
func (b Binary) Sum() string { return hex.EncodeToString(b.SHA256[:]) }

// CheckBinary refuses anything but a static linux/amd64 ELF executable
// (no program interpreter, no dynamic section: ESXi has no loader for a
// Linux binary's libraries) built with the ESXi-safe runtime of
// tools/rtpatch, and returns its size and SHA-256.
func CheckBinary(path string) (Binary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Binary{}, fmt.Errorf("read binary: %w", err)
	}
	if len(data) > maxBinarySize {
		return Binary{}, fmt.Errorf("%w: %s: %d bytes, more than %d", ErrNotESXiBinary, path, len(data), maxBinarySize)
	}
	if err := checkELF(data); err != nil {
		return Binary{}, fmt.Errorf("%w: %s: %v", ErrNotESXiBinary, path, err)
	}
	patched, err := doctor.PatchedRuntime(path)
	if err != nil {
		return Binary{}, fmt.Errorf("read binary: %w", err)
	}
	if !patched {
		return Binary{}, fmt.Errorf("%w: %s: built with the stock Go runtime, which dies on ESXi (the ESXi-safe runtime's marker is missing): build it with make build", ErrNotESXiBinary, path)
	}
	return Binary{Path: path, Size: int64(len(data)), SHA256: sha256.Sum256(data)}, nil
}

func checkELF(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF file: %v", err)
	}
	defer f.Close()
	switch {
	case f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64:
		return fmt.Errorf("built for %v %v, want 64-bit x86-64 (GOARCH=amd64)", f.Class, f.Machine)
	case f.Type != elf.ET_EXEC:
		return fmt.Errorf("ELF type %v, want an executable (ET_EXEC; a position-independent build is dynamic)", f.Type)
	case f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX:
		return fmt.Errorf("ELF OS/ABI %v, want Linux (GOOS=linux)", f.OSABI)
	}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
			return fmt.Errorf("dynamically linked (interpreter %q): build with CGO_ENABLED=0", bytes.TrimRight(interp, "\x00"))
		case elf.PT_DYNAMIC:
			return errors.New("has a dynamic segment: build with CGO_ENABLED=0")
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		return errors.New("has a .dynamic section: build with CGO_ENABLED=0")
	}
	return nil
}
