package esxsim

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/heapguard/heapguard/host"
)

// StallLog stops (on) or resumes the vmkernel log: while stalled the host
// goes on (flaps, leaks, crashes) but no line reaches the log, as when
// vmsyslogd hangs. Lines of the stalled time are lost, not written later.
func (h *Host) StallLog(on bool) {
	h.tb.Helper()
	if err := update(h.root, func(st *State) error { st.LogStalled = on; return nil }); err != nil {
		h.tb.Fatalf("esxsim: stall log: %v", err)
	}
}

// BlockVMX makes reading the .vmx of the registered VM with that display
// name block, as on a datastore in all-paths-down: the file becomes a FIFO
// nobody writes, so opening it waits. release ends the outage: a reader
// blocked meanwhile gets the file's text, and the FIFO is replaced by the
// regular file again. release may be called more than once; call it
// before the test ends (t.Cleanup), or a reader stays blocked.
func (h *Host) BlockVMX(name string) (release func()) {
	h.tb.Helper()
	p, text, err := blockVmx(h.root, name)
	if err != nil {
		h.tb.Fatalf("esxsim: BlockVMX: %v", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := unblockVmx(p, text); err != nil {
				h.tb.Fatalf("esxsim: BlockVMX release: %v", err)
			}
		})
	}
}

func blockVmx(root, name string) (p string, text []byte, err error) {
	err = locked(root, func(st *State) error {
		vm, err := st.uniqueVM(name)
		if err != nil {
			return err
		}
		p = vmxPath(root, st, vm)
		if text, err = os.ReadFile(p); err != nil {
			return fmt.Errorf("block .vmx of %q: %w", name, err)
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("block .vmx of %q: %w", name, err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			return fmt.Errorf("block .vmx of %q: mkfifo: %w", name, err)
		}
		return nil
	})
	return p, text, err
}

// unblockVmx hands text to the readers blocked on the FIFO at p (opening
// it for writing lets their open return), then puts the regular file back.
func unblockVmx(p string, text []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	switch {
	case err == nil:
		_, werr := f.Write(text)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		// EAGAIN: a text larger than the pipe; the reader gets a cut .vmx,
		// as an outage ending mid-read may give.
		if werr != nil && !errors.Is(werr, syscall.EAGAIN) {
			return fmt.Errorf("write %s: %w", p, werr)
		}
	case errors.Is(err, syscall.ENXIO):
		// Nobody is reading.
	default:
		return fmt.Errorf("open %s: %w", p, err)
	}
	return host.WriteFileAtomic(p, text, 0o644)
}
