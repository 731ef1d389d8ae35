// Package bundle reads a vm-support archive (a .tgz as support engineers
// receive it) as one stream: its logs, the host's version and its .vmx
// files, without extracting it and in bounded memory. It only reads; it
// judges nothing (the report does) and never writes to disk.
package bundle

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/heapguard/heapguard/internal/gunzip"
)

// Caps on what is read. A log is scanned as it streams, so its cap only
// refuses absurd headers; small files (.vmx, version) are held in memory.
const (
	MaxLogSize   int64 = 64 << 30
	MaxSmallFile int64 = 1 << 20
	MaxSmallSum  int64 = 32 << 20
)

// ErrBundle marks an archive that is not a readable vm-support bundle.
var ErrBundle = errors.New("not a readable vm-support bundle")

// Kind says which log a member is.
type Kind int

const (
	// Kernel is vmkernel.log (5.1 and later) or messages (4.x/5.0).
	Kernel Kind = iota
	// Warning is vmkwarning.log: a copy of vmkernel's warning lines.
	Warning
	// Agent is hostd.log, vpxa.log or vobd.log.
	Agent
)

// Log is one log member (or the join of its .FRAG-NNNNN pieces).
type Log struct {
	Name   string // the member's path inside the bundle, without the top folder
	Kind   Kind
	Family string // "vmkernel", "messages", "vmkwarning", "hostd", "vpxa", "vobd"
	Gen    int    // rotation number (vmkernel.2.gz: 2), -1 for the live log
	// ModTime is the member's (the first piece's): 4.x log dates carry no
	// year, and the file's time is the best guess of it.
	ModTime time.Time
}

// Handler reads one log. It need not read r to the end.
type Handler func(l Log, r io.Reader) error

// Result is what a bundle held besides its logs.
type Result struct {
	// Version is the first line of commands/vmware_-vl.txt ("VMware ESXi
	// 6.5.0 build-5969303"), "" when the bundle has none.
	Version string
	// VMX holds the .vmx files under vmfs/volumes/, for remediate.ScanVMX.
	VMX MemFS
	// VSIDump names the VSI dump's members (commands/vsi_traverse_-s.txt
	// or its .FRAG pieces); they are not read: the file is a vsish cache
	// (`vsish -c FILE`) whose format is not public (docs/bundle.md).
	VSIDump []string
	// Problems name members that were refused (over a cap) or whose
	// pieces were out of order; each is one error for the report.
	Problems []string
	// Members counts the archive's members seen.
	Members int
}

// logFamilies maps a log's base name (without rotation) to its kind.
var logFamilies = map[string]Kind{
	"vmkernel": Kernel, "messages": Kernel, "vmkwarning": Warning,
	"hostd": Agent, "vpxa": Agent, "vobd": Agent,
}

// logDirs are where vm-support puts logs: var/run/log on 6.5 and later
// (var/log then holds links), var/log before, scratch/log where the
// host's scratch location keeps them.
var logDirs = []string{"var/run/log", "var/log", "scratch/log"}

// ClassifyLog tells whether name (a path inside an ESXi root or bundle,
// no leading slash) is a log heapguard reads, and which.
func ClassifyLog(name string) (Log, bool) {
	dir, base := path.Split(name)
	if !isLogDir(strings.TrimSuffix(dir, "/")) {
		return Log{}, false
	}
	fam, gen, ok := SplitLogName(base)
	if !ok {
		return Log{}, false
	}
	return Log{Name: name, Kind: logFamilies[fam], Family: fam, Gen: gen}, true
}

func isLogDir(dir string) bool {
	for _, d := range logDirs {
		if dir == d {
			return true
		}
	}
	return false
}

// SplitLogName reads "vmkernel.log", "vmkernel.0.gz", "vmkernel.1",
// "messages", "messages.2.gz" into the family and rotation number (-1 for
// the live log).
func SplitLogName(base string) (family string, gen int, ok bool) {
	name := strings.TrimSuffix(base, ".gz")
	gz := name != base
	stem, rest, _ := strings.Cut(name, ".")
	if _, known := logFamilies[stem]; !known {
		return "", 0, false
	}
	switch {
	case rest == "log" && !gz, rest == "" && stem == "messages" && !gz:
		return stem, -1, true
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= 1000 || strconv.Itoa(n) != rest {
		return "", 0, false
	}
	return stem, n, true
}

// topDirs are the folders of an ESXi root that vm-support copies; the
// bundle's own top folder (esx-HOST-DATE--TIME-PID/) is anything else.
var topDirs = map[string]bool{"var": true, "etc": true, "commands": true, "vmfs": true, "scratch": true,
	"tmp": true, "usr": true, "json": true, "reports": true, "action-OUTPUT": true, "proc": true}

// memberPath cleans a tar name and drops the bundle's top folder.
func memberPath(name string) string {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if first, rest, ok := strings.Cut(name, "/"); ok && !topDirs[first] {
		return rest
	}
	return name
}

// SplitFrag splits "x.FRAG-00003" into "x" and 3: vm-support cuts files
// over 1 MB into such pieces.
func SplitFrag(name string) (string, int, bool) {
	i := strings.LastIndex(name, ".FRAG-")
	if i < 0 {
		return name, 0, false
	}
	n, err := strconv.Atoi(name[i+len(".FRAG-"):])
	if err != nil || n < 0 {
		return name, 0, false
	}
	return name[:i], n, true
}

const vsiDump = "commands/vsi_traverse_-s.txt"

// Read streams the gzipped tar r once: each log member (its .FRAG pieces
// joined in order) goes to h as it is read; the version and .vmx files are
// kept. A damaged archive returns what was read before the damage with an
// error wrapping ErrBundle.
func Read(r io.Reader, h Handler) (*Result, error) {
	res := &Result{VMX: MemFS{}}
	zr, err := gunzip.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return res, fmt.Errorf("%w: gunzip: %v", ErrBundle, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var small int64
	var j *join
	finish := func() {
		if j != nil {
			j.close()
			j = nil
		}
	}
	defer finish()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if res.Members == 0 {
				return res, fmt.Errorf("%w: the archive holds no file", ErrBundle)
			}
			return res, nil
		}
		if err != nil {
			finish()
			return res, fmt.Errorf("%w: after %d members: %v", ErrBundle, res.Members, err)
		}
		res.Members++
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			// Links (var/log/vmkernel.log -> /var/run/log/…) name a
			// file collected under its own path: reading both would
			// count its lines twice.
			continue
		}
		name := memberPath(hdr.Name)
		base, frag, isFrag := SplitFrag(name)
		if j != nil && (!isFrag || base != j.log.Name) {
			finish()
		}
		if base == vsiDump {
			res.VSIDump = append(res.VSIDump, name)
			continue
		}
		if l, ok := ClassifyLog(base); ok {
			if hdr.ModTime.Unix() > 0 {
				// 0 is a tar without times, not a log from 1970.
				l.ModTime = hdr.ModTime.UTC()
			}
			if hdr.Size > MaxLogSize {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %d bytes, over the %d-byte cap: not read", name, hdr.Size, MaxLogSize))
				continue
			}
			switch {
			case !isFrag:
				if err := h(l, tr); err != nil {
					// The handler says what it could not read; the
					// archive's own errors show at the next member.
					continue
				}
			case j == nil && frag == 0:
				j = startJoin(l, h)
				j.write(tr)
			case j != nil && frag == j.next:
				j.write(tr)
			default:
				want := 0
				if j != nil {
					want = j.next
				}
				finish()
				res.Problems = append(res.Problems, fmt.Sprintf("%s: piece %d where %d was due: the pieces after it are not read", name, frag, want))
			}
			continue
		}
		switch {
		case name == "commands/vmware_-vl.txt":
			b, err := readSmall(tr, hdr.Size, &small)
			if err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			res.Version, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
		case strings.HasPrefix(name, "vmfs/volumes/") && strings.HasSuffix(name, ".vmx") && strings.Count(name, "/") == 4:
			b, err := readSmall(tr, hdr.Size, &small)
			if err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			res.VMX[name] = b
		}
	}
}

// readSmall reads a small member whole, within the caps.
func readSmall(r io.Reader, size int64, sum *int64) ([]byte, error) {
	if size > MaxSmallFile {
		return nil, fmt.Errorf("%d bytes, over the %d-byte cap for such a file: not read", size, MaxSmallFile)
	}
	if *sum+size > MaxSmallSum {
		return nil, fmt.Errorf("small files over %d bytes in all: not read", MaxSmallSum)
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxSmallFile))
	*sum += int64(len(b))
	return b, err
}

// join feeds the pieces of one fragmented log, in order, to one handler
// call through a pipe: nothing is held but the pipe's buffer.
type join struct {
	log  Log
	next int
	pw   *io.PipeWriter
	done chan struct{}
}

func startJoin(l Log, h Handler) *join {
	pr, pw := io.Pipe()
	j := &join{log: l, pw: pw, done: make(chan struct{})}
	go func() {
		defer close(j.done)
		err := h(l, pr)
		// Drain what the handler left, so the writer never blocks.
		io.Copy(io.Discard, pr)
		pr.CloseWithError(err)
	}()
	return j
}

func (j *join) write(r io.Reader) {
	j.next++
	if _, err := io.Copy(j.pw, r); err != nil {
		// A piece cut short: the handler sees the archive's error, not a
		// clean end that would pass a truncated log as whole.
		j.pw.CloseWithError(err)
	}
}

func (j *join) close() {
	j.pw.Close()
	<-j.done
}
