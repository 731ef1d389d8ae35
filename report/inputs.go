package report

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/heapguard/heapguard/bundle"
	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// HostFiles are the logs found on a host (or copied root), each once,
// every family oldest copy first.
type HostFiles struct {
	Kernel  []string // vmkernel.log or messages, and rotated copies
	Warning []string // vmkwarning.log copies: read only without Kernel
	Agent   []string // hostd, vpxa, vobd logs
	// Pieces are logs of an extracted vm-support bundle left in
	// .FRAG-NNNNN pieces: the log's path (as if joined) -> its pieces in
	// order. Each is read as one file; its path is also in Kernel or
	// Warning.
	Pieces map[string][]string
}

// hostLogDirs are where each version keeps its logs: /var/run/log on 6.5
// and later (with /var/log/* links to it), /var/log before, /scratch/log
// where /var/log points to the scratch partition. The real folder comes
// first so that the names shown are the files' own.
var hostLogDirs = []string{"/var/run/log", "/scratch/log", "/var/log"}

// FindHostLogs looks for the logs heapguard reads in every folder where a
// version keeps them. Links are resolved inside root (an absolute link
// target names a path on the host, not here), and a file reached twice,
// by a link or a linked folder, is listed once under its real path.
func FindHostLogs(root string) HostFiles {
	type found struct {
		fam    string
		kind   bundle.Kind
		gen    int
		path   string
		fi     os.FileInfo
		pieces []string
	}
	var all []found
	for _, dir := range hostLogDirs {
		real, err := resolveIn(root, dir)
		if err != nil {
			continue
		}
		entries, err := os.ReadDir(host.Path(root, real))
		if err != nil {
			continue
		}
		for _, e := range entries {
			name, frag, isFrag := bundle.SplitFrag(e.Name())
			fam, gen, ok := bundle.SplitLogName(name)
			if !ok {
				continue
			}
			if isFrag {
				if frag == 0 {
					if pieces := fragPieces(host.Path(root, real), name); len(pieces) > 0 {
						l, _ := bundle.ClassifyLog("var/log/" + name)
						all = append(all, found{fam: fam, kind: l.Kind, gen: gen, path: host.Path(root, path.Join(real, name)), pieces: pieces})
					}
				}
				continue
			}
			hp, err := resolveIn(root, path.Join(real, e.Name()))
			if err != nil {
				continue
			}
			p := host.Path(root, hp)
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if slices.ContainsFunc(all, func(f found) bool { return f.fi != nil && os.SameFile(f.fi, fi) }) {
				continue
			}
			l, _ := bundle.ClassifyLog("var/log/" + e.Name())
			all = append(all, found{fam: fam, kind: l.Kind, gen: gen, path: p, fi: fi})
		}
	}
	slices.SortStableFunc(all, func(a, b found) int {
		if c := strings.Compare(a.fam, b.fam); c != 0 {
			return c
		}
		return cmp.Compare(b.gen, a.gen) // the live log (-1) last
	})
	var hf HostFiles
	for _, f := range all {
		if f.pieces != nil {
			if hf.Pieces == nil {
				hf.Pieces = map[string][]string{}
			}
			hf.Pieces[f.path] = f.pieces
		}
		switch f.kind {
		case bundle.Kernel:
			hf.Kernel = append(hf.Kernel, f.path)
		case bundle.Warning:
			hf.Warning = append(hf.Warning, f.path)
		default:
			hf.Agent = append(hf.Agent, f.path)
		}
	}
	return hf
}

// fragPieces lists name.FRAG-00000, name.FRAG-00001, … in dir, up to
// the first missing number: a gap would join the log wrong.
func fragPieces(dir, name string) []string {
	var out []string
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("%s.FRAG-%05d", name, i))
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return out
		}
		out = append(out, p)
	}
}

// scanPieces reads the pieces of one log, in order, as one file.
func scanPieces(name string, pieces []string, scan collector.ScanOptions) collector.FileSummary {
	var rs []io.Reader
	for _, p := range pieces {
		f, err := os.Open(p)
		if err != nil {
			return collector.FileSummary{Path: name, Err: fmt.Errorf("piece %s: %w", filepath.Base(p), collector.PathCause(err))}
		}
		defer f.Close()
		rs = append(rs, f)
	}
	s, err := collector.Scan(io.MultiReader(rs...), scan)
	if err != nil {
		err = fmt.Errorf("scan: %w", err)
	}
	return collector.FileSummary{Path: name, Summary: s, Err: err}
}

// RootVersion is the first line of an extracted bundle's
// commands/vmware_-vl.txt, "" when root has none (a live host).
func RootVersion(root string) string {
	b, err := os.ReadFile(host.Path(root, "/commands/vmware_-vl.txt"))
	if err != nil || len(b) > int(bundle.MaxSmallFile) {
		return ""
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return v
}

// resolveIn follows the links of the host path p inside root, as the
// host would, and returns the host path it names.
func resolveIn(root, p string) (string, error) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0; {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(host.Path(root, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of links", p)
		}
		t, err := os.Readlink(host.Path(root, next))
		if err != nil {
			return "", err
		}
		if !path.IsAbs(t) {
			t = path.Join(cur, t)
		}
		parts = append(strings.Split(strings.Trim(t, "/"), "/"), parts...)
		cur = "/"
	}
	return cur, nil
}

// warningsRepeat is why vmkwarning logs are not read next to vmkernel's.
const warningsRepeat = "its lines repeat the warnings of the vmkernel log, which is read"

// byLog says why the files were not read, one line per log: a log's
// rotated copies join its line ("/var/run/log/hostd.log and 7 older
// copies: why"), so that a host's ten hostd copies do not fill the report.
func byLog(paths []string, why string) []string {
	type group struct {
		shown string
		gen   int
		n     int
	}
	var order []string
	groups := map[string]*group{}
	for _, p := range paths {
		i := strings.LastIndexAny(p, "/:")
		fam, gen, _ := bundle.SplitLogName(p[i+1:])
		key := p[:i+1] + fam
		g, ok := groups[key]
		if !ok {
			g = &group{shown: p, gen: gen}
			groups[key] = g
			order = append(order, key)
		}
		g.n++
		// The live log (-1), else the newest copy, names the group.
		if gen < g.gen {
			g.shown, g.gen = p, gen
		}
	}
	var out []string
	for _, k := range order {
		g := groups[k]
		switch g.n {
		case 1:
			out = append(out, g.shown+": "+why)
		case 2:
			out = append(out, g.shown+" and 1 older copy: "+why)
		default:
			out = append(out, fmt.Sprintf("%s and %d older copies: %s", g.shown, g.n-1, why))
		}
	}
	return out
}

// bundleInput is what a bundle gave the report.
type bundleInput struct {
	files    []collector.FileSummary
	notRead  []string
	errors   []string
	version  string
	vms      map[string]policy.VMRef
	vmxError error
}

// readBundle streams the vm-support archive at p once. Each log member is
// scanned as it is read; a member met twice (one file collected under two
// paths: same name, same bytes) is counted once; vmkwarning copies are
// kept aside and read only when the bundle has no vmkernel log.
func readBundle(p string, scan collector.ScanOptions) bundleInput {
	var in bundleInput
	f, err := os.Open(p)
	if err != nil {
		in.errors = append(in.errors, fmt.Sprintf("read bundle %s: %v", p, collector.PathCause(err)))
		return in
	}
	defer f.Close()
	var warnings []collector.FileSummary
	var agents []collector.FileSummary
	seen := map[string]string{} // base name + digest -> first member
	res, err := bundle.Read(f, func(l bundle.Log, r io.Reader) error {
		name := p + ":" + l.Name
		h := sha256.New()
		s, serr := collector.ScanModTime(io.TeeReader(r, h), scan, l.ModTime)
		if serr == nil {
			_, serr = io.Copy(h, r)
		}
		if serr != nil {
			serr = fmt.Errorf("scan: %w", serr)
		}
		key := path.Base(l.Name) + fmt.Sprintf(":%x", h.Sum(nil))
		if first, dup := seen[key]; dup && serr == nil {
			in.notRead = append(in.notRead, fmt.Sprintf("%s: the same file as %s: counted once", name, first))
			return nil
		}
		seen[key] = name
		fs := collector.FileSummary{Path: name, Summary: s, Err: serr}
		switch l.Kind {
		case bundle.Warning:
			warnings = append(warnings, fs)
		case bundle.Agent:
			agents = append(agents, fs) // its crash lines (the scan tells the log by its lines)
		default:
			in.files = append(in.files, fs)
		}
		return serr
	})
	if err != nil {
		in.errors = append(in.errors, fmt.Sprintf("read bundle %s: %v (what was read before is reported)", p, err))
	}
	for _, pr := range res.Problems {
		in.errors = append(in.errors, fmt.Sprintf("read bundle %s: %s", p, pr))
	}
	kernels := len(in.files)
	in.files = append(in.files, agents...)
	if kernels > 0 {
		var ws []string
		for _, w := range warnings {
			ws = append(ws, w.Path)
		}
		in.notRead = append(in.notRead, byLog(ws, warningsRepeat)...)
	} else {
		in.files = append(in.files, warnings...)
	}
	if kernels == 0 && len(warnings) == 0 && err == nil {
		in.errors = append(in.errors, fmt.Sprintf("read bundle %s: no vmkernel log in it (looked in var/run/log, var/log, scratch/log)", p))
	}
	if len(res.VSIDump) > 0 {
		in.notRead = append(in.notRead, fmt.Sprintf("%s:%s (%d pieces): the VSI dump is a vsish cache, read by `vsish -c FILE` only; "+
			"its heap statistics are not judged (give them with --heap-stats)", p, strings.TrimSuffix(res.VSIDump[0], ".FRAG-00000"), len(res.VSIDump)))
	}
	in.version = res.Version
	if len(res.VMX) > 0 {
		refs, verr := remediate.ScanVMX(res.VMX)
		in.vmxError = verr
		in.vms = make(map[string]policy.VMRef, len(refs))
		for mac, ref := range refs {
			in.vms[mac] = policy.VMRef{Name: ref.Name, VMX: ref.VMX}
		}
	}
	return in
}
