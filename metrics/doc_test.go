package metrics

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docRow is a row of docs/metrics.md's table: | `name` | type | labels | …
var docRow = regexp.MustCompile("^\\| `(heapguard_[a-z_]+)` \\| ([a-z]+) \\|([^|]*)\\|")

// docMetric is what the document says of one metric.
type docMetric struct {
	typ    string
	labels []string
}

func loadDoc(t *testing.T) map[string]docMetric {
	t.Helper()
	f, err := os.Open("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := map[string]docMetric{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := docRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if _, dup := doc[m[1]]; dup {
			t.Errorf("docs/metrics.md: %s listed twice", m[1])
		}
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		doc[m[1]] = docMetric{typ: m[2], labels: labels}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestDocMatchesOutput: every family a full snapshot emits is in
// docs/metrics.md with its type and labels, and the document lists no
// family that is not emitted.
func TestDocMatchesOutput(t *testing.T) {
	doc := loadDoc(t)
	if len(doc) == 0 {
		t.Fatal("docs/metrics.md: no metric rows")
	}
	fams := parse(t, encode(t, full()))
	for name, f := range fams {
		d, ok := doc[name]
		if !ok {
			t.Errorf("%s is emitted but not in docs/metrics.md", name)
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != d.typ {
			t.Errorf("%s: docs/metrics.md says %s, output %s", name, d.typ, got)
		}
		var labels []string
		for _, lp := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, lp.GetName())
		}
		slices.Sort(labels)
		if !slices.Equal(labels, d.labels) {
			t.Errorf("%s: docs/metrics.md lists labels %v, output has %v", name, d.labels, labels)
		}
	}
	for name := range doc {
		if fams[name] == nil {
			t.Errorf("docs/metrics.md lists %s, which is never emitted", name)
		}
	}
	// The document's own example alerts name real metrics.
	b, _ := os.ReadFile("../docs/metrics.md")
	for _, m := range regexp.MustCompile(`heapguard_[a-z_]+`).FindAll(b, -1) {
		if name := string(m); fams[name] == nil {
			t.Errorf("docs/metrics.md names %s, which is never emitted", name)
		}
	}
}
