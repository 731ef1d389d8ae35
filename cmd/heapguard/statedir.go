package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// defaultStateDir is heapguard-state/<host name> beside the binary. The
// binary usually sits on a datastore, which every host of a cluster may
// mount: the state (log position, journal, budgets, lock) is one host's,
// and two hosts must never share it.
func defaultStateDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the state folder: %w (give --state-dir)", err)
	}
	name, err := os.Hostname()
	dir := hostDirName(name)
	if err != nil || dir == "" {
		return "", fmt.Errorf("find the state folder: no usable host name (%q, %v): give --state-dir", name, err)
	}
	return filepath.Join(filepath.Dir(exe), "heapguard-state", dir), nil
}

// hostDirName turns a host name into one safe path element: lower case,
// anything but letters, digits, '.', '-' and '_' as '_'; "" when nothing
// usable is left.
func hostDirName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if strings.Trim(s, "._") == "" {
		return ""
	}
	return s
}
