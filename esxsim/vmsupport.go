package esxsim

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
)

// DefaultFragment is the piece size of large files in a bundle: vm-support
// splits files over 1 MB into NAME.FRAG-00000, NAME.FRAG-00001, … (see
// testdata/SOURCES.md, "vm-support layout").
const DefaultFragment = 1 << 20

// VMSupportOptions change the bundle VMSupport writes.
type VMSupportOptions struct {
	// Fragment splits files larger than it into .FRAG-NNNNN pieces; 0 is
	// DefaultFragment, negative never splits.
	Fragment int64
}

// VMSupport writes a vm-support bundle of the simulated host at root to w:
// a gzipped tar whose top folder is esx-HOST-DATE--HH.MM-PID/, holding
// the logs (under var/run/log with var/log links on 6.5 and later, under
// var/log before), commands/vmware_-vl.txt and the VMs' .vmx files: the
// files heapguard reads and a few realistic ones, not the hundreds a real
// bundle has. unverified: member order, modes and owners of a real bundle.
func VMSupport(root string, w io.Writer, o VMSupportOptions) error {
	if o.Fragment == 0 {
		o.Fragment = DefaultFragment
	}
	return view(root, func(st *State) error {
		ver := st.Ver()
		now := st.Now.UTC()
		top := fmt.Sprintf("esx-%s-%s--%s-%d", st.Scenario.Hostname, now.Format("2006-01-02"), now.Format("15.04"), 2097152+(st.Seed%100000+100000)%100000)
		zw := gzip.NewWriter(w)
		tw := tar.NewWriter(zw)
		b := &tarBuilder{tw: tw, top: top, now: now, frag: o.Fragment}
		b.dir("")
		logDir := "var/log"
		if runLogDir(ver) {
			logDir = "var/run/log"
		}
		b.dir("var")
		b.dir("var/log")
		if logDir != "var/log" {
			b.dir("var/run")
			b.dir(logDir)
		}
		entries, err := os.ReadDir(host.Path(root, "/var/log"))
		if err != nil {
			return fmt.Errorf("vm-support: %w", err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !isBundledLog(e.Name()) {
				continue
			}
			data, err := os.ReadFile(host.Path(root, "/var/log/"+e.Name()))
			if err != nil {
				return fmt.Errorf("vm-support: %w", err)
			}
			b.file(logDir+"/"+e.Name(), data)
			if logDir != "var/log" {
				b.link("var/log/"+e.Name(), "/"+logDir+"/"+e.Name())
			}
		}
		b.dir("commands")
		b.file("commands/vmware_-vl.txt", []byte(RenderVmware(ver, true, true)))
		// Every real bundle has these at its top and etc/vmware/esx.conf
		// (bundle loaders look for them: testdata/SOURCES.md). unverified:
		// their contents here beyond the two esx.conf keys.
		b.file("action.log", nil)
		b.file("error.log", nil)
		b.dirs("etc/vmware")
		b.file("etc/vmware/esx.conf", fmt.Appendf(nil, "/adv/Misc/HostName = %q\n/resourceGroups/version = %q\n", st.Scenario.Hostname, ver.Full))
		vols := host.Path(root, "/vmfs/volumes")
		var vmx []string
		filepath.WalkDir(vols, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".vmx") {
				vmx = append(vmx, p)
			}
			return nil
		})
		slices.Sort(vmx)
		for _, p := range vmx {
			rel, _ := filepath.Rel(host.Path(root, "/"), p)
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("vm-support: %w", err)
			}
			rel = filepath.ToSlash(rel)
			b.dirs(path.Dir(rel))
			b.file(rel, data)
		}
		if b.err != nil {
			return fmt.Errorf("vm-support: %w", b.err)
		}
		if err := tw.Close(); err != nil {
			return fmt.Errorf("vm-support: %w", err)
		}
		return zw.Close()
	})
}

// runLogDir: 6.5 and later keep logs in /var/run/log (/var/log links).
func runLogDir(v Version) bool {
	var major, minor int
	fmt.Sscanf(v.Name, "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 5
}

// isBundledLog picks the logs vm-support collects from var/log of a
// simulated root (not esxsim's own actions log).
func isBundledLog(name string) bool {
	for _, fam := range []string{"vmkernel.", "vmkwarning.", "hostd.", "vpxa.", "vobd."} {
		if strings.HasPrefix(name, fam) {
			return true
		}
	}
	return name == "messages" || strings.HasPrefix(name, "messages.")
}

// tarBuilder writes members under one top folder, remembering the first
// error.
type tarBuilder struct {
	tw   *tar.Writer
	top  string
	now  time.Time
	frag int64
	err  error
	made map[string]bool
}

func (b *tarBuilder) write(h *tar.Header, data []byte) {
	if b.err != nil {
		return
	}
	h.ModTime, h.Format = b.now, tar.FormatPAX
	if b.err = b.tw.WriteHeader(h); b.err == nil && len(data) > 0 {
		_, b.err = b.tw.Write(data)
	}
}

func (b *tarBuilder) dir(p string) {
	if b.made == nil {
		b.made = map[string]bool{}
	}
	if b.made[p] {
		return
	}
	b.made[p] = true
	b.write(&tar.Header{Typeflag: tar.TypeDir, Name: path.Join(b.top, p) + "/", Mode: 0o755}, nil)
}

// dirs makes p and its parents.
func (b *tarBuilder) dirs(p string) {
	if p == "." || p == "" {
		return
	}
	b.dirs(path.Dir(p))
	b.dir(p)
}

func (b *tarBuilder) file(p string, data []byte) {
	if b.frag < 0 || int64(len(data)) <= b.frag {
		b.write(&tar.Header{Typeflag: tar.TypeReg, Name: path.Join(b.top, p), Mode: 0o644, Size: int64(len(data))}, data)
		return
	}
	for i := 0; len(data) > 0; i++ {
		n := min(int64(len(data)), b.frag)
		b.write(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s.FRAG-%05d", path.Join(b.top, p), i), Mode: 0o644, Size: n}, data[:n])
		data = data[n:]
	}
}

func (b *tarBuilder) link(p, target string) {
	b.write(&tar.Header{Typeflag: tar.TypeSymlink, Name: path.Join(b.top, p), Linkname: target, Mode: 0o777}, nil)
}
