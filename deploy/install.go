package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Action is what Install did on a host.
type Action string

const (
	Installed Action = "installed" // no binary was there
	Unchanged Action = "unchanged" // the same binary was there: nothing sent
	Upgraded  Action = "upgraded"  // another binary was replaced
)

// BinaryName is the installed file's name in the destination folder.
const BinaryName = "heapguard"

// DefaultVolumes is where ESXi mounts its datastores.
const DefaultVolumes = "/vmfs/volumes"

// ErrNoDatastore: --dest was not given and no datastore could be found.
var ErrNoDatastore = errors.New("no datastore found")

// InstallOptions says where to put the binary.
type InstallOptions struct {
	// Dest is the folder; "" is DefaultDest's choice.
	Dest string
	// Volumes is where datastores are looked for when Dest is "";
	// "" is DefaultVolumes.
	Volumes string
	// ProbeOnly probes the host and stops: nothing is created or sent.
	ProbeOnly bool
	// Setup, when not nil, is the mode installed with the binary
	// (persist), then doctor runs on the host.
	Setup *Setup
	// Uninstall removes what Install put there (Uninstall); Status
	// changes nothing and says what is installed (InstalledStatus).
	Uninstall, Status bool
}

// Result is one host's outcome.
type Result struct {
	Target Target
	Action Action
	SHA256 string // of the binary now installed, hex
	Path   string // where it is installed
	Err    error
	// Probe is what the host said before the copy (nil: not probed).
	Probe *Probe
	// Warnings are what will not work there, from the probe.
	Warnings []string
	// Mode is the mode installed (or found, for --status), BootScript the
	// file holding its block, Changes what was done besides the binary.
	Mode       Mode
	BootScript string
	Changes    []string
	// Doctor is doctor's verdict line on the host, DoctorStatus its exit
	// status (-1: it did not run); "" when it was not run.
	Doctor       string
	DoctorStatus int
	// Found are facts found on the host, a line each: what --status
	// found, the daemon's pid after a deploy.
	Found []string
}

// Install puts bin at <dest>/heapguard on the host: created with mkdir -p,
// sent under a temporary name, read back and compared by SHA-256 here (the
// host needs no hashing tool), then made executable and renamed over the
// final name in one step. When the same binary is already there nothing
// is sent. First the host is probed (ProbeHost): a host where the binary
// could not run, or without room for it, is refused before any change.
func Install(ctx context.Context, c *Client, bin Binary, opts InstallOptions) (Result, error) {
	res := Result{Target: c.Target}
	dest := opts.Dest
	if dest == "" {
		var err error
		if dest, err = DefaultDest(ctx, c, opts.Volumes); err != nil {
			return res, err
		}
	}
	dest = path.Clean(dest)
	final := path.Join(dest, BinaryName)
	if err := checkRemotePath(final); err != nil {
		return res, err
	}
	res.Path = final
	if opts.Setup != nil {
		if err := opts.Setup.Validate(dest); err != nil {
			return res, err
		}
	}

	// Before anything is created or sent: a host that cannot run the
	// binary or has no room for it is left as it was.
	probe := ProbeHost(ctx, c, dest)
	res.Probe = &probe
	warnings, err := probe.Decide(bin.Size)
	res.Warnings = warnings
	if err != nil {
		return res, err
	}
	if opts.Setup != nil && opts.Setup.Mode != ModeNone {
		// A mode edits the host's boot files: only on a host known to be
		// ESXi, and inetd only where there is one.
		if !IsESXi(probe.Version) {
			return res, fmt.Errorf("--mode %s: the host did not say it is ESXi (vmware -vl, esxcli system version get), so its boot script and crontab are not touched and nothing was copied (--mode none copies the binary alone)", opts.Setup.Mode)
		}
		if opts.Setup.Mode == ModeInetd {
			if err := checkInetd(ctx, c); err != nil {
				return res, err
			}
		}
	}
	if opts.ProbeOnly {
		res.Action = Probed
		return res, nil
	}

	had, err := remoteSum(ctx, c, final)
	if err != nil {
		return res, err
	}
	if had == "" {
		if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptMkdir, dest); err != nil {
			return res, fmt.Errorf("create %s: %w", dest, err)
		}
	}
	if err := removeStaleParts(ctx, c, dest, c.cfg.clock()); err != nil {
		return res, err
	}
	if had == bin.Sum() {
		// Make sure it can run, as a fresh install would.
		if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptChmodExe, final); err != nil {
			return res, err
		}
		res.Action, res.SHA256 = Unchanged, had
		return res, finish(ctx, c, &res, opts, false)
	}
	tmp := path.Join(dest, partName(partDeadline(ctx, c.cfg, c.cfg.clock()), c.Target.Host, randomHex()))
	renamed := false
	defer func() {
		if !renamed {
			// Best effort, also when ctx's time is up: after a dropped
			// connection a later run removes it once its deadline passed.
			c.runScript(context.WithoutCancel(ctx), min(c.cfg.commandTimeout(), removeGrace), scriptRemove, tmp)
		}
	}()
	if err := send(ctx, c, bin, tmp); err != nil {
		return res, err
	}
	if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptChmodExe, tmp); err != nil {
		return res, err
	}
	if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptMove, tmp, final); err != nil {
		return res, fmt.Errorf("rename %s to %s: %w", tmp, final, err)
	}
	renamed = true
	res.Action, res.SHA256 = Installed, bin.Sum()
	if had != "" {
		res.Action = Upgraded
	}
	return res, finish(ctx, c, &res, opts, true)
}

// finish installs the mode, if asked, and runs doctor on the host.
func finish(ctx context.Context, c *Client, res *Result, opts InstallOptions, binChanged bool) error {
	if opts.Setup == nil {
		return nil
	}
	if err := persist(ctx, c, res, *opts.Setup, binChanged); err != nil {
		return err
	}
	runDoctor(ctx, c, res, *opts.Setup)
	return nil
}

// send copies bin to tmp and reads it back: it returns nil only when the
// host holds exactly bin's bytes there.
func send(ctx context.Context, c *Client, bin Binary, tmp string) error {
	f, err := os.Open(bin.Path)
	if err != nil {
		return fmt.Errorf("read binary: %w", err)
	}
	defer f.Close()
	if err := sendReader(ctx, c, f, bin.Sum(), bin.Size, tmp); err != nil {
		return fmt.Errorf("send %s: %w: not installed", bin.Path, err)
	}
	return nil
}

// remoteSum is the SHA-256 of the file at p on the host, "" if absent.
func remoteSum(ctx context.Context, c *Client, p string) (string, error) {
	sum, _, err := c.readSum(ctx, scriptReadIfFile, p)
	var re *RemoteError
	switch {
	case errors.As(err, &re) && re.Status == exitAbsent:
		return "", nil
	case errors.As(err, &re) && re.Status == exitNotRegular:
		return "", fmt.Errorf("%s exists and is not a file: not replaced", p)
	case err != nil:
		return "", fmt.Errorf("read installed %s: %w", p, err)
	}
	return sum, nil
}

// readSum runs s (which prints a file) and hashes what comes out.
func (c *Client) readSum(ctx context.Context, s script, p string) (string, int64, error) {
	h := sha256.New()
	cw := &countingWriter{w: h}
	if err := c.pipeScript(ctx, c.cfg.copyTimeout(), s, nil, cw, p); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

func randomHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// DefaultDest is <volumes>/<first datastore>/heapguard, where the first
// datastore is the first name, in byte order, under volumes that is a
// symbolic link to a folder (each datastore's label links to its volume's
// UUID folder), leaving out ESXi's own volumes (BOOTBANK*, OSDATA*,
// LOCKER*, Hypervisor*).
func DefaultDest(ctx context.Context, c *Client, volumes string) (string, error) {
	if volumes == "" {
		volumes = DefaultVolumes
	}
	var out bytes.Buffer
	if err := c.pipeScript(ctx, c.cfg.commandTimeout(), scriptListLinks, nil, &limitedBuffer{b: &out, n: 1 << 20}, volumes); err != nil {
		return "", fmt.Errorf("list datastores in %s: %w", volumes, err)
	}
	name, ok := pickDatastore(out.String())
	if !ok {
		return "", fmt.Errorf("%w in %s: give --dest", ErrNoDatastore, volumes)
	}
	return path.Join(volumes, name, BinaryName), nil
}

// systemVolumes are prefixes of the volumes ESXi keeps for itself.
var systemVolumes = []string{"BOOTBANK", "OSDATA", "LOCKER", "Hypervisor"}

func pickDatastore(listing string) (string, bool) {
	var names []string
	for _, n := range strings.Split(listing, "\n") {
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00\r") {
			continue
		}
		system := false
		for _, p := range systemVolumes {
			system = system || strings.HasPrefix(n, p)
		}
		if !system {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "", false
	}
	return names[0], true
}
