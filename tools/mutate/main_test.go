package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/internal/testtool"
)

// TestMutationsApply keeps the list in step with the code: every original
// text of tools/mutate/mutations.txt occurs exactly once in its file. When
// this fails after a change, update the named entry (make mutate then
// tells whether the tests still catch it).
func TestMutationsApply(t *testing.T) {
	f, err := os.Open("mutations.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	muts, err := ParseList(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(muts) < 25 {
		t.Errorf("%d mutations, want at least 25", len(muts))
	}
	areas := map[string]int{}
	for _, m := range muts {
		areas[strings.SplitN(m.Name, "/", 2)[0]]++
		src, err := os.ReadFile(filepath.Join("..", "..", m.File))
		if err != nil {
			t.Errorf("%s: %v", m.Name, err)
			continue
		}
		if _, err := Apply(m, src); err != nil {
			t.Error(err)
		}
	}
	for _, a := range []string{"policy", "allow", "mac", "guards", "journal"} {
		if areas[a] == 0 {
			t.Errorf("no mutation of %s", a)
		}
	}
}

func TestParseList(t *testing.T) {
	good := "# c\n\n== a/b\nfile: x.go\npkg: ./x ./y\nrun: ^TestX$\n- \tif a < b {\n- \t\treturn\n+ \tif a <= b {\n+ \t\treturn\n\n== c\nfile: y.go\npkg: ./y\n- f()\n"
	muts, err := ParseList(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(muts) != 2 || muts[0].From != "\tif a < b {\n\t\treturn" || muts[0].To != "\tif a <= b {\n\t\treturn" ||
		strings.Join(muts[0].Pkgs, ",") != "./x,./y" || muts[0].Run != "^TestX$" || muts[1].To != "" || muts[1].Line != 12 {
		t.Fatalf("parsed %+v", muts)
	}
	for name, bad := range map[string]string{
		"no file":        "== a\npkg: ./x\n- a\n+ b\n",
		"no pkg":         "== a\nfile: x.go\n- a\n+ b\n",
		"no original":    "== a\nfile: x.go\npkg: ./x\n+ b\n",
		"no change":      "== a\nfile: x.go\npkg: ./x\n- a\n+ a\n",
		"duplicate":      "== a\nfile: x.go\npkg: ./x\n- a\n+ b\n== a\nfile: x.go\npkg: ./x\n- a\n+ b\n",
		"minus after":    "== a\nfile: x.go\npkg: ./x\n- a\n+ b\n- c\n",
		"outside":        "file: x.go\n",
		"unknown key":    "== a\nfile: x.go\npkg: ./x\nrn: x\n- a\n",
		"bad run regexp": "== a\nfile: x.go\npkg: ./x\nrun: (\n- a\n",
	} {
		if _, err := ParseList(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
}

func TestApplyExactlyOnce(t *testing.T) {
	m := Mutation{Name: "m", File: "f.go", From: "a < b", To: "a <= b"}
	got, err := Apply(m, []byte("if a < b {}"))
	if err != nil || string(got) != "if a <= b {}" {
		t.Errorf("Apply = %q, %v", got, err)
	}
	for _, src := range []string{"if a > b {}", "a < b; a < b"} {
		if _, err := Apply(m, []byte(src)); !errors.Is(err, ErrStale) {
			t.Errorf("Apply on %q: %v, want ErrStale", src, err)
		}
	}
}

// TestRunOnAModule runs the tool on a small module: one mutation its test
// catches, one it cannot (an equivalent one), and a stale entry.
func TestRunOnAModule(t *testing.T) {
	goCmd := testtool.Need(t, "golang-go", "go")
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":      "module example.com/m\n\ngo 1.22\n",
		"add.go":      "package m\n\nfunc Add(a, b int) int { return a + b }\n",
		"add_test.go": "package m\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal(Add(2, 3))\n\t}\n}\n",
		"mutations.txt": "== minus\nfile: add.go\npkg: .\n- return a + b\n+ return a - b\n\n" +
			"== swapped\nfile: add.go\npkg: .\n- return a + b\n+ return b + a\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-list", "mutations.txt", "-go", goCmd}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one survivor)\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"killed    minus", "by TestAdd", "SURVIVED  swapped", "mutations: 2, killed 1, survived 1, broken 0; score 1/2 = 50.0%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The code changed under the list: the tool stops before running anything.
	if err := os.WriteFile(filepath.Join(dir, "add.go"), []byte("package m\n\nfunc Add(a, b int) int { return b + a }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"-list", "mutations.txt", "-go", goCmd}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), `mutation "minus": original text not found in add.go`) || strings.Contains(out.String(), "baseline") {
		t.Errorf("stale list: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}
