package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProductionNeverImportsSimulator keeps the simulated host out of the
// shipped binary (tailscale's deptest idea): heapguard must never act on
// simulated truth by accident.
func TestProductionNeverImportsSimulator(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	bad := []string{
		"github.com/heapguard/heapguard/esxsim",
		"github.com/heapguard/heapguard/internal/loggen",
		"github.com/heapguard/heapguard/internal/deploytest",
		"github.com/heapguard/heapguard/internal/promtest",
		"testing",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps gave too little to judge: %q", deps)
	}
	for _, d := range deps {
		for _, b := range bad {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("cmd/heapguard depends on %s", d)
			}
		}
	}
}

// TestNoTemplateEngine: text/template's reflection (MethodByName) keeps
// every exported method in the binary: html/template cost 2.2 MB of binary
// and 1.8 MB of start-up memory in every process, cron checks included.
// The report's page is written by code (report/page.go).
func TestNoTemplateEngine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, d := range strings.Fields(string(out)) {
		if d == "text/template" || d == "html/template" {
			t.Errorf("cmd/heapguard depends on %s", d)
		}
	}
}

// TestLayers keeps the pipeline of DESIGN.md one-directional: the pure
// policy imports nothing of the project (no host, no executor, no log
// reader, no logger); the parsers know nothing of decisions or actions;
// remediate carries plans out and never reaches back into the driver.
func TestLayers(t *testing.T) {
	const mod = "github.com/heapguard/heapguard/"
	for _, tc := range []struct {
		pkg      string
		mayUse   []string // project packages allowed (prefix match); nil: none
		forbidAl []string // any dependency, project or not
	}{
		{pkg: "policy", mayUse: []string{}, forbidAl: []string{"go.uber.org/zap", "os/exec"}},
		{pkg: "internal/gunzip", mayUse: []string{}},
		{pkg: "collector", mayUse: []string{"host", "internal/gunzip"}},
		{pkg: "collector/follow", mayUse: []string{"host"}},
		{pkg: "heap", mayUse: []string{"host"}},
		{pkg: "remediate", mayUse: []string{"host", "policy"}},
		{pkg: "bundle", mayUse: []string{"internal/gunzip"}},
		// A copy of the journal: it knows entries, not the agent.
		{pkg: "internal/syslogfwd", mayUse: []string{"remediate", "host", "policy"}},
		{pkg: "report", mayUse: []string{"bundle", "collector", "heap", "host", "internal/gunzip", "policy", "remediate"}},
		// metrics is pure, and writes the exposition itself: the Prometheus
		// libraries (tests only) would make the binary a third larger.
		{pkg: "metrics", mayUse: []string{}, forbidAl: []string{"go.uber.org/zap", "os/exec", "github.com/prometheus", "google.golang.org/protobuf"}},
		{pkg: "doctor", mayUse: []string{"collector", "heap", "host", "internal/gunzip", "policy", "remediate"}},
		// deploy checks a binary with doctor's marker test and parses the
		// probe's answers with remediate's parsers (the same outputs the
		// agent reads), and reads a VIB with internal/vib; it never reaches
		// the commands or the agent.
		{pkg: "deploy", mayUse: []string{"doctor", "remediate", "collector", "heap", "host", "internal/gunzip", "internal/vib", "policy"}},
		// The VIB builder and reader: pure, no host, no SSH.
		{pkg: "internal/vib", mayUse: []string{}},
	} {
		out, err := exec.Command("go", "list", "-deps", mod+tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, out)
		}
		for _, d := range strings.Fields(string(out)) {
			for _, f := range tc.forbidAl {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s", tc.pkg, d)
				}
			}
			dep, ok := strings.CutPrefix(d, mod)
			if !ok || dep == tc.pkg {
				continue
			}
			allowed := false
			for _, m := range tc.mayUse {
				allowed = allowed || dep == m || strings.HasPrefix(dep, m+"/")
			}
			if !allowed {
				t.Errorf("%s depends on %s", tc.pkg, dep)
			}
		}
	}
}

// hostTools are the commands heapguard runs on an ESXi host. Only the
// packages that own host commands name them: remediate (vim-cmd,
// net-stats, esxcfg-vmknic, esxcli, vmware, the init scripts) and heap
// (vsish).
var hostTools = []string{"vim-cmd", "vsish", "net-stats", "esxcfg-vmknic", "esxcli", "vmware", "localcli", "/etc/init.d/", "/etc/opt/init.d/"}

// TestHostCommandsInOnePlace: no other production package builds an
// argument vector for the host. In every non-test file outside remediate,
// heap, host and the simulator it looks for a tool's name opening a
// composite literal or passed to Run/Command/CommandContext, and for a Run
// method called on something named like a runner.
func TestHostCommandsInOnePlace(t *testing.T) {
	owners := map[string]bool{"remediate": true, "heap": true, "host": true, "esxsim": true, "cmd/esxsim": true, "tools": true, "internal": true}
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../..", p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			top := strings.SplitN(rel, "/", 2)[0]
			hidden := rel != "." && strings.HasPrefix(d.Name(), ".")
			if owners[rel] || owners[top] || hidden || d.Name() == "testdata" || d.Name() == "build" || d.Name() == "bin" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		isTool := func(e ast.Expr) (string, bool) {
			lit, ok := e.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return "", false
			}
			v, _ := strconv.Unquote(lit.Value)
			for _, tool := range hostTools {
				if v == tool || strings.HasSuffix(tool, "/") && strings.HasPrefix(v, tool) {
					return v, true
				}
			}
			return "", false
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				// An argument vector: []string{"vim-cmd", …}.
				if len(n.Elts) > 0 {
					if v, ok := isTool(n.Elts[0]); ok {
						t.Errorf("%s: argument vector for %q outside remediate and heap", fset.Position(n.Pos()), v)
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					break
				}
				switch sel.Sel.Name {
				case "Run", "Command", "CommandContext":
					for _, a := range n.Args {
						if v, ok := isTool(a); ok {
							t.Errorf("%s: %s runs %q outside remediate and heap", fset.Position(n.Pos()), sel.Sel.Name, v)
						}
					}
					if recv := strings.ToLower(types.ExprString(sel.X)); sel.Sel.Name == "Run" && strings.HasSuffix(recv, "runner") {
						t.Errorf("%s: %s.Run outside remediate and heap", fset.Position(n.Pos()), types.ExprString(sel.X))
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("looked at %d files: the walk missed the tree", files)
	}
}
