// Command mkvib packs a heapguard binary built for ESXi into a
// CommunitySupported VIB and a 7.x+ component offline bundle (make vib):
//
//	go run ./tools/mkvib -bin bin/heapguard -describe "$(git describe --tags --always --dirty)" \
//	    -date "$(git log -1 --format=%cI)" -out bin
//
// writes bin/heapguard-VERSION.vib and bin/heapguard-VERSION-offline-bundle.zip.
// The same binary, version and date give the same bytes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/heapguard/heapguard/deploy"
	"github.com/heapguard/heapguard/internal/vib"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkvib", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin/heapguard", "the heapguard binary (static linux/amd64, ESXi-safe runtime)")
	describe := fs.String("describe", "", "`git describe --tags` output, made into the VIB version (v1.2.3-5-gabc is 1.2.3-5; no tag is 0.0.0-<commit time>)")
	version := fs.String("version", "", "the VIB version itself (1.2.3-0), instead of -describe")
	date := fs.String("date", "", "release date and file times, RFC 3339 (the commit's date: the same input gives the same bytes)")
	out := fs.String("out", "bin", "output folder")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := mkvib(*bin, *describe, *version, *date, *out, stdout); err != nil {
		fmt.Fprintf(stderr, "mkvib: %v\n", err)
		return 1
	}
	return 0
}

func mkvib(bin, describe, version, date, out string, stdout io.Writer) error {
	if date == "" {
		return errors.New("-date is required (the same input must give the same VIB)")
	}
	when, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return fmt.Errorf("-date: %w", err)
	}
	if version == "" {
		var dirty bool
		if version, dirty = vib.VersionOf(describe, when); dirty {
			fmt.Fprintf(stdout, "warning: uncommitted changes: the VIB has its commit's version %s, and esxcli skips a VIB whose version is installed\n", version)
		}
	}
	// Only a binary that can run on ESXi goes into a VIB.
	if _, err := deploy.CheckBinary(bin); err != nil {
		return err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	b, err := vib.Build(vib.Spec{Binary: data, Version: version, Date: when})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{b.VIBName, b.VIB}, {b.BundleName, b.Bundle}} {
		p := filepath.Join(out, f.name)
		if err := writeFile(p, f.data); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s  %d bytes\n", p, len(f.data))
	}
	fmt.Fprintf(stdout, "VIB %s, acceptance level CommunitySupported (unsigned)\n", b.ID)
	return nil
}

// writeFile writes p whole or not at all.
func writeFile(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".mkvib-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return os.Rename(tmp.Name(), p)
}
