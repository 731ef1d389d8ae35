package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// weakHostKeys are the x/crypto/ssh helpers that accept a key without
// checking it against known_hosts (InsecureIgnoreHostKey), or accept one
// fixed key whatever known_hosts says (FixedHostKey).
var weakHostKeys = map[string]bool{"InsecureIgnoreHostKey": true, "FixedHostKey": true}

// TestNoWeakHostKeyCheck reads the source of every production package of
// the module: none names InsecureIgnoreHostKey or FixedHostKey, and every
// HostKeyCallback set (in a struct literal or by assignment) is
// KnownHosts.callback, the strict check whose behaviour hostkeys_test.go
// tests (unknown refused without --accept-new, changed refused always).
// Test files are left out: a test server may trust its own key.
func TestNoWeakHostKeyCheck(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var callbacks, files int
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || n == "bin" || n == "build" || (strings.HasPrefix(n, ".") && p != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		files++
		rel, _ := filepath.Rel(root, p)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if weakHostKeys[n.Sel.Name] {
					t.Errorf("%s: %s: host keys must be checked against known_hosts (KnownHosts.callback)", fset.Position(n.Pos()), n.Sel.Name)
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "HostKeyCallback" {
					callbacks++
					checkCallback(t, fset, rel, n.Value)
				}
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					if s, ok := l.(*ast.SelectorExpr); ok && s.Sel.Name == "HostKeyCallback" && i < len(n.Rhs) {
						callbacks++
						checkCallback(t, fset, rel, n.Rhs[i])
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
	// The walk must have seen the module and deploy's one client config.
	if files < 50 || callbacks == 0 {
		t.Fatalf("read %d files, %d HostKeyCallback settings: the walk missed the source", files, callbacks)
	}
}

// checkCallback fails unless v is a call of a method named callback on a
// KnownHosts (k.callback(db), cfg.KnownHosts.callback(db)).
func checkCallback(t *testing.T, fset *token.FileSet, file string, v ast.Expr) {
	t.Helper()
	call, ok := v.(*ast.CallExpr)
	if ok {
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "callback" && strings.HasPrefix(file, "deploy"+string(filepath.Separator)) {
			return
		}
	}
	t.Errorf("%s: HostKeyCallback set to something other than KnownHosts.callback: every host key must go through the strict known_hosts check", fset.Position(v.Pos()))
}
