package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// TestUsageDoc keeps docs/USAGE.md equal to the commands' own help
// (go test ./cmd/heapguard -run TestUsageDoc -update rewrites it), and
// registers every command's flags once more to catch clashes (govc's test).
func TestUsageDoc(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("# heapguard usage\n\nGenerated from the commands' help by `go test ./cmd/heapguard -run TestUsageDoc -update`.\n\n```\n")
	writeHelp(&b)
	b.WriteString("```\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fs, _ := c.flagSet(io.Discard)
		b.WriteString("\n## heapguard " + n + "\n\n```\n")
		c.writeUsage(&b, fs)
		b.WriteString("```\n")
	}
	p := filepath.Join("..", "..", "docs", "USAGE.md")
	if *update {
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Errorf("%s is out of date: go test ./cmd/heapguard -run TestUsageDoc -update", p)
	}
}
