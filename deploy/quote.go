package deploy

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrRemotePath marks a path that cannot be given to the host's shell.
var ErrRemotePath = errors.New("bad remote path")

// Remote commands over SSH are shell strings: the server hands them to the
// user's shell. They are built only by shellCommand, from a fixed script
// and paths that went through quotePath, never from other data.

// script is fixed shell text in which %[n]s stands for the n-th path,
// quoted. Its own type keeps data (a string variable) out.
type script string

const (
	scriptMkdir    script = "mkdir -p %[1]s"
	scriptCatTo    script = "cat > %[1]s"
	scriptCat      script = "exec cat %[1]s"
	scriptChmodExe script = "chmod 0755 %[1]s"
	scriptMove     script = "mv -f %[1]s %[2]s"
	scriptRemove   script = "rm -f %[1]s"
	// The partial copies in the folder, one name a line (tempPrefix,
	// tempSuffix; which are stale is decided here, not on the host). An
	// unmatched glob stays as it is and is no file.
	scriptListParts script = `cd %[1]s && for f in .heapguard.*.part; do if [ -f "$f" ]; then printf '%%s\n' "$f"; fi; done`
	// Exit 111: absent; 112: present but not a regular file.
	scriptReadIfFile script = "if [ -f %[1]s ]; then exec cat %[1]s; elif [ -e %[1]s ] || [ -L %[1]s ]; then exit 112; else exit 111; fi"
	// The names under the folder that are symbolic links to a folder: on
	// ESXi each datastore's label links to its volume's UUID folder.
	scriptListLinks script = `cd %[1]s && for f in *; do if [ -L "$f" ] && [ -d "$f/" ]; then printf '%%s\n' "$f"; fi; done`
)

const (
	exitAbsent     = 111
	exitNotRegular = 112
)

// checkRemotePath accepts an absolute path without NUL, CR or newline (the
// host's shell and its tools would cut or split such a path).
func checkRemotePath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w %q: not absolute", ErrRemotePath, p)
	case strings.ContainsAny(p, "\x00\n\r"):
		return fmt.Errorf("%w %q: holds a NUL, CR or newline", ErrRemotePath, p)
	case path.Clean(p) != p:
		return fmt.Errorf("%w %q: not clean (want %q)", ErrRemotePath, p, path.Clean(p))
	}
	return nil
}

// quotePath makes p one shell word: single quotes around it, each ' in it
// written '\”. Inside single quotes the shell expands nothing ($, `, \, *).
func quotePath(p string) (string, error) {
	if err := checkRemotePath(p); err != nil {
		return "", err
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'", nil
}

// shellCommand is s with its paths quoted in.
func shellCommand(s script, paths ...string) (string, error) {
	quoted := make([]any, len(paths))
	for i, p := range paths {
		q, err := quotePath(p)
		if err != nil {
			return "", err
		}
		quoted[i] = q
	}
	return fmt.Sprintf(string(s), quoted...), nil
}
