package deploytest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ELF describes a tiny ELF file: a header, its program headers and a
// payload, enough for debug/elf.
type ELF struct {
	Machine elf.Machine // 0: x86-64
	Type    elf.Type    // 0: ET_EXEC
	Class32 bool
	Interp  bool // a PT_INTERP naming the glibc loader
	Dynamic bool // a PT_DYNAMIC segment
	Marker  bool // carries the ESXi-safe runtime's function name
	Payload string
}

// Marker is the function name tools/rtpatch adds to the runtime, joined
// here so that this package's own binary does not carry it.
var Marker = strings.Join([]string{"runtime", "esxiEpollWait"}, ".")

// Bytes renders e.
func (e ELF) Bytes() []byte {
	machine, typ := e.Machine, e.Type
	if machine == 0 {
		machine = elf.EM_X86_64
	}
	if typ == 0 {
		typ = elf.ET_EXEC
	}
	const ehsize, phsize = 64, 56
	interp := "/lib64/ld-linux-x86-64.so.2\x00"
	data := e.Payload
	if e.Marker {
		data += "\x00" + Marker + "\x00"
	}
	type ph struct {
		typ  elf.ProgType
		off  uint64
		size uint64
	}
	var phs []ph
	nph := 1
	if e.Interp {
		nph++
	}
	if e.Dynamic {
		nph++
	}
	dataOff := uint64(ehsize + phsize*nph)
	var tail bytes.Buffer
	phs = append(phs, ph{elf.PT_LOAD, 0, dataOff + uint64(len(data))})
	tail.WriteString(data)
	if e.Interp {
		phs = append(phs, ph{elf.PT_INTERP, dataOff + uint64(tail.Len()), uint64(len(interp))})
		tail.WriteString(interp)
	}
	if e.Dynamic {
		phs = append(phs, ph{elf.PT_DYNAMIC, dataOff + uint64(tail.Len()), 16})
		tail.Write(make([]byte, 16))
	}
	var b bytes.Buffer
	class := elf.ELFCLASS64
	if e.Class32 {
		class = elf.ELFCLASS32
	}
	ident := [16]byte{0x7f, 'E', 'L', 'F', byte(class), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), byte(elf.ELFOSABI_NONE)}
	b.Write(ident[:])
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&b, le, v) }
	w(uint16(typ))
	w(uint16(machine))
	w(uint32(elf.EV_CURRENT))
	w(uint64(0x401000)) // entry
	w(uint64(ehsize))   // phoff
	w(uint64(0))        // shoff
	w(uint32(0))        // flags
	w(uint16(ehsize))
	w(uint16(phsize))
	w(uint16(nph))
	w(uint16(64)) // shentsize
	w(uint16(0))  // shnum
	w(uint16(0))  // shstrndx
	for _, p := range phs {
		w(uint32(p.typ))
		w(uint32(elf.PF_R | elf.PF_X))
		w(p.off)
		w(uint64(0x400000) + p.off) // vaddr
		w(uint64(0x400000) + p.off) // paddr
		w(p.size)
		w(p.size)
		w(uint64(0x1000))
	}
	b.Write(tail.Bytes())
	return b.Bytes()
}

// Write puts e in dir under name and returns its path.
func (e ELF) Write(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, e.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
