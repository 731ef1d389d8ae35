package esxsim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/internal/vib"
)

// esxcli software: the host's acceptance level, and VIBs installed into
// the simulated root. Only VIBs installed here are listed (a real host
// lists its hundreds of VMware VIBs too). Sources and what is unverified:
// testdata/SOURCES.md, "esxcli software".

// Acceptance levels, from the most trusted (vSphere docs, "Acceptance
// Levels"), with the descriptor's word for each.
var acceptanceLevels = []struct{ level, word string }{
	{"VMwareCertified", "certified"},
	{"VMwareAccepted", "accepted"},
	{"PartnerSupported", "partner"},
	{"CommunitySupported", "community"},
}

// DefaultAcceptance is the level ESXi ships with.
const DefaultAcceptance = "PartnerSupported"

// acceptanceRank is 0 for VMwareCertified and more for less trusted
// levels; -1 for a word or level it does not know.
func acceptanceRank(s string) int {
	for i, l := range acceptanceLevels {
		if s == l.level || s == l.word {
			return i
		}
	}
	return -1
}

func acceptanceWord(level string) string {
	if r := acceptanceRank(level); r >= 0 {
		return acceptanceLevels[r].word
	}
	return level
}

func acceptanceLevelName(word string) string {
	if r := acceptanceRank(word); r >= 0 {
		return acceptanceLevels[r].level
	}
	return word
}

// hostAcceptance is the scenario's level ("" is ESXi's default).
func hostAcceptance(st *State) string {
	if st.Scenario.AcceptanceLevel == "" {
		return DefaultAcceptance
	}
	return st.Scenario.AcceptanceLevel
}

// InstalledVIB is a VIB esxcli installed into the root.
type InstalledVIB struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Vendor      string    `json:"vendor"`
	Acceptance  string    `json:"acceptance"` // the descriptor's word: community
	InstallDate time.Time `json:"install_date"`
	Files       []string  `json:"files"` // host paths, folders not included
}

// esxcliError prints an esxcli error block: " [Class]", its lines, and the
// log-file line, each indented by one space, as ESXi 7/8 print them
// (lamw/ghettoVCB#307).
func esxcliError(c *call, class string, lines ...string) int {
	fmt.Fprintf(c.stderr, " [%s]\n", class)
	for _, l := range lines {
		fmt.Fprintf(c.stderr, " %s\n", l)
	}
	fmt.Fprint(c.stderr, " Please refer to the log file for more details.\n")
	return 1
}

// softwareResult is esxcli's "Installation Result" / "Removal Result"
// block (vmware-archive/vsphere-storage-for-docker#764,
// fangli/esxi-hardware-watchdog-driver#2).
func softwareResult(title, message string, reboot bool, installed, removed, skipped []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n   Message: %s\n   Reboot Required: %t\n", title, message, reboot)
	for _, f := range []struct {
		k string
		v []string
	}{{"VIBs Installed", installed}, {"VIBs Removed", removed}, {"VIBs Skipped", skipped}} {
		line := "   " + f.k + ":"
		if len(f.v) > 0 {
			line += " " + strings.Join(f.v, ", ")
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// RenderVIBList is `esxcli software vib list` for the VIBs installed here
// (unverified: the column set of 6.x/7.x; 8.x may add Platforms).
func RenderVIBList(v Version, vibs []InstalledVIB) string {
	rows := make([][]string, 0, len(vibs))
	for _, x := range vibs {
		rows = append(rows, []string{x.Name, x.Version, x.Vendor, acceptanceLevelName(x.Acceptance), x.InstallDate.Format("2006-01-02")})
	}
	return esxcliTable([]string{"Name", "Version", "Vendor", "Acceptance Level", "Install Date"}, make([]bool, 5), rows, v.EsxcliPadded)
}

// runSoftware answers `esxcli software …` (words after "software").
func runSoftware(c *call, st *State, words []string, opt func(short, long string) (string, bool, bool), opts []string) int {
	switch strings.Join(words, " ") {
	case "acceptance get":
		if len(opts) > 0 {
			return esxcliBadOpt(c, opts[0])
		}
		fmt.Fprintln(c.stdout, hostAcceptance(st))
		return 0
	case "vib list":
		if len(opts) > 0 {
			return esxcliBadOpt(c, opts[0])
		}
		fmt.Fprint(c.stdout, RenderVIBList(st.Ver(), st.VIBs))
		return 0
	case "vib install":
		return vibInstall(c, opts)
	case "vib remove":
		name, given, hasVal := opt("-n", "--vibname")
		if !given || !hasVal || name == "" {
			fmt.Fprint(c.stderr, "Error: Missing required parameter -n|--vibname\n")
			return 1
		}
		return vibRemove(c, name)
	}
	return esxcliUnknown(c, append([]string{"software"}, words...))
}

// vibInstall takes -v|--viburl PATH or -d|--depot BUNDLE.zip; -f|--force
// and --no-sig-check are taken and change nothing here: on 8.0 --force
// does not get a community VIB past the acceptance level
// (lamw/ghettoVCB#307), and the VIBs here are unsigned anyway.
func vibInstall(c *call, opts []string) int {
	var viburl, depot string
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		k, v, eq := strings.Cut(o, "=")
		switch k {
		case "-f", "--force", "--no-sig-check":
			continue
		case "-v", "--viburl", "-d", "--depot":
		default:
			return esxcliBadOpt(c, o)
		}
		if !eq {
			if i+1 >= len(opts) {
				return esxcliBadOpt(c, o)
			}
			i++
			v = opts[i]
		}
		if k == "-v" || k == "--viburl" {
			viburl = v
		} else {
			depot = v
		}
	}
	if (viburl == "") == (depot == "") {
		fmt.Fprint(c.stderr, "Error: give one of -v|--viburl or -d|--depot\n")
		return 1
	}
	// The path is the caller's: in the chroot harness the root is /.
	src := viburl + depot
	data, err := readLimited(src, vib.MaxVIBSize)
	if err != nil {
		// unverified wording.
		return esxcliError(c, "VibDownloadError", fmt.Sprintf("Could not read %s: %v", src, err))
	}
	if depot != "" {
		b, err := vib.ReadBundle(data)
		if err != nil || len(b.VIBs) != 1 {
			return esxcliError(c, "MetadataDownloadError", fmt.Sprintf("Could not read the depot at %s: %v", src, err))
		}
		for _, d := range b.VIBs {
			data = d
		}
	}
	v, err := vib.Read(data)
	if err != nil {
		return esxcliError(c, "VibFormatError", fmt.Sprintf("Error parsing VIB %s: %v", src, err))
	}
	d := v.Descriptor
	id := d.ID()
	return mutate(c, id, func(st *State, _ *sim) (int, string) {
		if st.Scenario.SecureBoot && acceptanceRank(d.AcceptanceLevel) == acceptanceRank("community") {
			// unverified wording: ESXi refuses community VIBs under
			// secure boot (and refuses to lower the level to community).
			esxcliError(c, "AcceptanceConfigError",
				fmt.Sprintf("Secure Boot enabled: Cannot install VIB %s with acceptance level %s.", id, d.AcceptanceLevel))
			return 1, "refused: secure boot"
		}
		level := hostAcceptance(st)
		if r := acceptanceRank(d.AcceptanceLevel); r < 0 || r > acceptanceRank(level) {
			esxcliError(c, "AcceptanceConfigError",
				fmt.Sprintf("VIB %s's acceptance level is %s, which is not compliant with the ImageProfile acceptance level %s", id, d.AcceptanceLevel, acceptanceWord(level)),
				"To change the host acceptance level, use the 'esxcli software acceptance set' command.")
			return 1, "refused: acceptance level " + acceptanceWord(level)
		}
		var removed []string
		for i, x := range st.VIBs {
			if x.ID == id {
				// unverified message.
				fmt.Fprint(c.stdout, softwareResult("Installation Result", "Host is not changed.", false, nil, nil, []string{id}))
				return 0, "skipped: installed"
			}
			if x.Name == d.Name {
				if err := removeFiles(c.root, x.Files); err != nil {
					esxcliError(c, "InstallationError", err.Error())
					return 1, "failed: " + err.Error()
				}
				removed = append(removed, x.ID)
				st.VIBs = append(st.VIBs[:i], st.VIBs[i+1:]...)
				break
			}
		}
		files, err := installFiles(c.root, v.Files)
		if err != nil {
			esxcliError(c, "InstallationError", err.Error())
			return 1, "failed: " + err.Error()
		}
		st.VIBs = append(st.VIBs, InstalledVIB{ID: id, Name: d.Name, Version: d.Version, Vendor: d.Vendor,
			Acceptance: d.AcceptanceLevel, InstallDate: st.Now, Files: files})
		live := d.LiveInstall == "true"
		msg := "Operation finished successfully."
		if !live {
			msg = "The update completed successfully, but the system needs to be rebooted for the changes to be effective."
		}
		fmt.Fprint(c.stdout, softwareResult("Installation Result", msg, !live, []string{id}, removed, nil))
		return 0, "installed"
	})
}

func vibRemove(c *call, name string) int {
	return mutate(c, name, func(st *State, _ *sim) (int, string) {
		for i, x := range st.VIBs {
			if x.Name != name && x.ID != name {
				continue
			}
			if err := removeFiles(c.root, x.Files); err != nil {
				esxcliError(c, "InstallationError", err.Error())
				return 1, "failed: " + err.Error()
			}
			st.VIBs = append(st.VIBs[:i], st.VIBs[i+1:]...)
			fmt.Fprint(c.stdout, softwareResult("Removal Result", "Operation finished successfully.", false, nil, []string{x.ID}, nil))
			return 0, "removed"
		}
		// unverified wording.
		esxcliError(c, "NoMatchError", fmt.Sprintf("No VIB matching VIB search specification '%s'.", name))
		return 1, "no match"
	})
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > limit {
		return nil, fmt.Errorf("not a file of at most %d bytes", limit)
	}
	return os.ReadFile(p)
}

// installFiles writes the payload under root with its modes and returns
// the host paths of the files.
func installFiles(root string, files []vib.File) ([]string, error) {
	var paths []string
	for _, f := range files {
		hp := "/" + strings.TrimSuffix(f.Path, "/")
		if path.Clean(hp) != hp || hp == "/" {
			return nil, fmt.Errorf("payload path %q", f.Path)
		}
		p := host.Path(root, hp)
		mode := fs.FileMode(f.Mode) & fs.ModePerm
		if strings.HasSuffix(f.Path, "/") {
			if err := os.MkdirAll(p, mode|0o700); err != nil {
				return nil, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p+".esxsim-tmp", f.Data, mode); err != nil {
			return nil, err
		}
		if err := os.Chmod(p+".esxsim-tmp", mode); err != nil {
			return nil, err
		}
		if err := os.Rename(p+".esxsim-tmp", p); err != nil {
			return nil, err
		}
		paths = append(paths, hp)
	}
	return paths, nil
}

func removeFiles(root string, files []string) error {
	for _, f := range files {
		if err := os.Remove(host.Path(root, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
