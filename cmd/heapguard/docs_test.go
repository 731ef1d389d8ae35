package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocLinks: the README and docs/ link only to files a clone has, and
// name no path outside the repository (`../…`), which a clone lacks.
func TestDocLinks(t *testing.T) {
	docs, _ := filepath.Glob("../../docs/*.md")
	docs = append(docs, "../../README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	outside := regexp.MustCompile("`\\.\\./[^`]*`")
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			p := filepath.Join(filepath.Dir(doc), target)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s links to %s, which does not exist", filepath.Base(doc), target)
			} else if rel, _ := filepath.Rel("../..", p); strings.HasPrefix(rel, "..") {
				t.Errorf("%s links to %s, outside the repository", filepath.Base(doc), target)
			}
		}
		for _, m := range outside.FindAllString(string(b), -1) {
			t.Errorf("%s names %s, outside the repository (a clone does not have it)", filepath.Base(doc), m)
		}
	}
}
