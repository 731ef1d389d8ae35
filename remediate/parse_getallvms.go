package remediate

import (
	"fmt"
	"io"
	"regexp"
	"strings"
)

// VMRow is one VM of `vim-cmd vmsvc/getallvms`.
type VMRow struct {
	// ID is the vmid, kept as text: it only ever goes back to vim-cmd.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Datastore and Path split the File column "[datastore1] VM1/VM1.vmx";
	// Datastore is "" when the column had no "[...]" part.
	Datastore  string `json:"datastore,omitempty"`
	Path       string `json:"path"`
	GuestOS    string `json:"guest_os"`
	Version    string `json:"version"`
	Annotation string `json:"annotation,omitempty"`
}

// File is the File column as vim-cmd prints it.
func (r VMRow) File() string {
	if r.Datastore == "" {
		return r.Path
	}
	return "[" + r.Datastore + "] " + r.Path
}

// getallvmsCols are the header's column starts (byte offsets); annotation
// is -1 when the header has no Annotation column.
type getallvmsCols struct {
	name, file, guest, version, annotation int
}

var (
	// The columns right of the name: "[ds] path.vmx  guestId  vmx-NN  annotation".
	// Guest ids and hardware versions never hold blanks, so they anchor
	// the row from the right of the file column.
	getallvmsTailDS = regexp.MustCompile(`^\[([^\]]*)\] ?(.*?\.vmx)\s+(\S+)\s+(vmx-\d+)(?:\s+(.*?))?\s*$`)
	// No "[datastore]" in the File column (vim-cmd-getallvms-esxi6x-no-annotation-header.txt).
	getallvmsNoDS = regexp.MustCompile(`^(.*?)\s+(\S+\.vmx)\s+(\S+)\s+(vmx-\d+)(?:\s+(.*?))?\s*$`)
	getallvmsLead = regexp.MustCompile(`^\s*(\d+)\s+(\S.*)$`)
	hwVersion     = regexp.MustCompile(`^vmx-\d+$`)
)

// ParseGetAllVMs parses `vim-cmd vmsvc/getallvms`.
//
// VM names may hold blanks, brackets and shell metacharacters, so a row is
// not split on whitespace. Where the header is present and a row lines up
// with its column offsets, the offsets are used; otherwise (the header
// missing, columns misaligned as in pasted output, whitespace collapsed as
// in the ESX 4 sample) the row is read from the vmid on the left and from
// the "[datastore] path.vmx  guestId  vmx-NN" columns, which hold no
// surprises, on the right: the name is everything between, ending at the
// first " [" after which those columns follow.
//
// Lines that do not start with a vmid, or that do but are not a whole row,
// are skipped: real hosts print multi-line annotations whose continuation
// lines start anywhere, and "Skipping invalid VM '12'" for broken VMs.
// Header-only output gives an empty list. Output with neither a header nor
// a row is an error wrapping ErrBadOutput.
func ParseGetAllVMs(r io.Reader) ([]VMRow, error) {
	var (
		rows      []VMRow
		cols      *getallvmsCols
		sawHeader bool
		other     int
		first     string
	)
	err := scanLines(r, func(line string) {
		if strings.TrimSpace(line) == "" {
			return
		}
		if !sawHeader && len(rows) == 0 {
			if f := strings.Fields(line); strings.EqualFold(f[0], "Vmid") {
				sawHeader = true
				cols = parseGetallvmsHeader(line)
				return
			}
		}
		row, ok := parseGetallvmsRow(line, cols)
		if !ok {
			if other == 0 {
				first = line
			}
			other++
			return
		}
		rows = append(rows, row)
	})
	if err != nil {
		return rows, fmt.Errorf("parse getallvms: %w", err)
	}
	if !sawHeader && len(rows) == 0 && other > 0 {
		return nil, fmt.Errorf("parse getallvms: no header and no VM row, first line %s: %w", quoteClip(first), ErrBadOutput)
	}
	return rows, nil
}

func parseGetallvmsHeader(line string) *getallvmsCols {
	find := func(from int, word string) int {
		if from < 0 || from > len(line) {
			return -1
		}
		i := strings.Index(line[from:], word)
		if i < 0 {
			return -1
		}
		return from + i
	}
	c := getallvmsCols{}
	c.name = find(4, "Name")
	c.file = find(c.name+1, "File")
	c.guest = find(c.file+1, "Guest OS")
	c.version = find(c.guest+1, "Version")
	c.annotation = find(c.version+1, "Annotation")
	if c.name < 0 || c.file < 0 || c.guest < 0 || c.version < 0 {
		return nil
	}
	return &c
}

func parseGetallvmsRow(line string, cols *getallvmsCols) (VMRow, bool) {
	m := getallvmsLead.FindStringSubmatch(line)
	if m == nil {
		return VMRow{}, false
	}
	if cols != nil {
		if row, ok := getallvmsByColumns(line, *cols); ok {
			return row, true
		}
	}
	id, rest := m[1], m[2]
	// The File column starts at a " [" that the right-hand columns follow.
	// Several may (a name or annotation holding "[x] y.vmx g vmx-7"); the
	// most plausible wins: the folder is named like the VM, the path and
	// the annotation do not span a column gap (vim-cmd pads with 3 or more
	// blanks); then the leftmost.
	best, bestScore := VMRow{}, -1
	for i := 1; i < len(rest); i++ {
		if rest[i] != '[' || rest[i-1] != ' ' && rest[i-1] != '\t' {
			continue
		}
		t := getallvmsTailDS.FindStringSubmatch(rest[i:])
		name := strings.TrimSpace(rest[:i])
		if t == nil || name == "" {
			continue
		}
		row := VMRow{ID: id, Name: name, Datastore: t[1], Path: t[2], GuestOS: t[3], Version: t[4], Annotation: t[5]}
		score := 0
		if folder, _, ok := strings.Cut(row.Path, "/"); ok && folder == name {
			score += 4
		}
		if !strings.Contains(row.Path, "   ") {
			score += 2
		}
		if !strings.Contains(row.Annotation, "   ") {
			score++
		}
		if score > bestScore {
			best, bestScore = row, score
		}
	}
	if bestScore >= 0 {
		return best, true
	}
	if t := getallvmsNoDS.FindStringSubmatch(rest); t != nil && strings.TrimSpace(t[1]) != "" {
		return VMRow{ID: id, Name: strings.TrimSpace(t[1]), Path: t[2], GuestOS: t[3], Version: t[4], Annotation: t[5]}, true
	}
	return VMRow{}, false
}

// getallvmsByColumns cuts a row at the header's offsets, and accepts the
// result only when every cut falls on a blank before a column and the
// columns look right; a row that does not line up goes to the fallback.
func getallvmsByColumns(line string, c getallvmsCols) (VMRow, bool) {
	end := len(line)
	if c.version >= end {
		return VMRow{}, false
	}
	for _, at := range []int{c.name, c.file, c.guest, c.version} {
		if line[at-1] != ' ' || line[at] == ' ' {
			return VMRow{}, false
		}
	}
	verEnd, ann := end, ""
	if c.annotation > 0 && c.annotation < end {
		if line[c.annotation-1] != ' ' {
			return VMRow{}, false
		}
		verEnd, ann = c.annotation, strings.TrimSpace(line[c.annotation:])
	}
	id := strings.TrimSpace(line[:c.name])
	name := strings.TrimSpace(line[c.name:c.file])
	file := strings.TrimSpace(line[c.file:c.guest])
	guest := strings.TrimSpace(line[c.guest:c.version])
	version := strings.TrimSpace(line[c.version:verEnd])
	if id == "" || strings.Trim(id, "0123456789") != "" || name == "" ||
		!strings.HasSuffix(file, ".vmx") || guest == "" || strings.ContainsAny(guest, " \t") ||
		!hwVersion.MatchString(version) {
		return VMRow{}, false
	}
	row := VMRow{ID: id, Name: name, Path: file, GuestOS: guest, Version: version, Annotation: ann}
	if strings.HasPrefix(file, "[") {
		ds, p, ok := strings.Cut(file[1:], "]")
		if !ok {
			return VMRow{}, false
		}
		row.Datastore, row.Path = ds, strings.TrimPrefix(p, " ")
	}
	return row, true
}
