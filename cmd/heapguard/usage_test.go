package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/remediate"
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

// TestReadmeCheckTime keeps the README's figures for how long a check
// may take equal to those of check's help (remediate.Live.WorstPlanTime).
func TestReadmeCheckTime(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	w := (&remediate.Live{}).WorstPlanTime(2 * heap.Timeout)
	prompt := remediate.DefaultShutdownTimeout + remediate.DefaultPollInterval + remediate.DefaultVerifyInterval
	for _, want := range [][2]string{
		{"about ", prompt.String()}, {"at most ", w.Total().String()},
		{"power-offs ", w.PowerOffs.String()}, {"vpxa restart ", w.Restart.String()}, {"verification ", w.Verify.String()},
		{"", remediate.DefaultAgentCommandTimeout.String() + " more"},
	} {
		if !bytes.Contains(readme, []byte(want[0]+want[1])) {
			t.Errorf("README.md does not say %q", want[0]+want[1])
		}
		if !strings.Contains(checkTime(), want[0]+want[1]) {
			t.Errorf("check --help does not say %q", want[0]+want[1])
		}
	}
}
