// Command mutate checks that the tests catch hand-written bugs: it applies
// each mutation of a list to one source file through `go test -overlay`
// (the tree is never edited), runs the tests the mutation names, and
// counts the mutation killed when they fail and survived when they pass.
//
//	go run ./tools/mutate                      # every mutation of tools/mutate/mutations.txt
//	go run ./tools/mutate -only guards         # those whose name contains "guards"
//	go run ./tools/mutate -check               # only check that every original text is found
//
// A survivor is a missing test. The exit status is 0 when every mutation
// was killed, 1 when one survived, and 2 when the list does not apply to
// the tree (an original text not found exactly once, a mutation that does
// not compile, a test that fails without any mutation): the list must be
// kept in step with the code, and the tool says which entry is stale.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Mutation is one entry of the list.
type Mutation struct {
	Name string
	// File is relative to the module root.
	File string
	// From must occur exactly once in File; To replaces it.
	From, To string
	// Pkgs are the packages whose tests must catch it; Run is their -run
	// pattern ("" runs them all).
	Pkgs []string
	Run  string
	// Line is where the entry starts in the list, for messages.
	Line int
}

// ParseList reads the mutation list. Entries start with "== name"; then
// "file: F", "pkg: P [P...]", an optional "run: REGEXP", and the original
// and replacement as diff lines: "-" then the text (one space after the
// dash is dropped) for each original line, "+" likewise for each
// replacement line. Lines starting with "#" and blank lines between
// entries are ignored.
func ParseList(r io.Reader) ([]Mutation, error) {
	var out []Mutation
	var cur *Mutation
	var from, to []string
	flush := func() error {
		if cur == nil {
			return nil
		}
		switch {
		case cur.File == "":
			return fmt.Errorf("line %d: mutation %q has no file", cur.Line, cur.Name)
		case len(cur.Pkgs) == 0:
			return fmt.Errorf("line %d: mutation %q has no pkg", cur.Line, cur.Name)
		case len(from) == 0:
			return fmt.Errorf("line %d: mutation %q has no original (- lines)", cur.Line, cur.Name)
		}
		cur.From, cur.To = strings.Join(from, "\n"), strings.Join(to, "\n")
		if len(to) == 0 {
			cur.To = ""
		}
		if cur.From == cur.To {
			return fmt.Errorf("line %d: mutation %q changes nothing", cur.Line, cur.Name)
		}
		out = append(out, *cur)
		cur, from, to = nil, nil, nil
		return nil
	}
	sc := bufio.NewScanner(r)
	n := 0
	names := map[string]int{}
	for sc.Scan() {
		n++
		line := sc.Text()
		diff := func(s string) string {
			return strings.TrimPrefix(s[1:], " ")
		}
		switch {
		case strings.HasPrefix(line, "== "):
			if err := flush(); err != nil {
				return nil, err
			}
			name := strings.TrimSpace(line[3:])
			if at, dup := names[name]; dup {
				return nil, fmt.Errorf("line %d: mutation %q already at line %d", n, name, at)
			}
			names[name] = n
			cur = &Mutation{Name: name, Line: n}
		case cur == nil && (strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#")):
		case cur == nil:
			return nil, fmt.Errorf("line %d: %q outside a mutation (start one with \"== name\")", n, line)
		case strings.HasPrefix(line, "-"):
			if len(to) > 0 {
				return nil, fmt.Errorf("line %d: - line after a + line in %q", n, cur.Name)
			}
			from = append(from, diff(line))
		case strings.HasPrefix(line, "+"):
			to = append(to, diff(line))
		case strings.HasPrefix(line, "file:"):
			cur.File = strings.TrimSpace(line[len("file:"):])
		case strings.HasPrefix(line, "pkg:"):
			cur.Pkgs = strings.Fields(line[len("pkg:"):])
		case strings.HasPrefix(line, "run:"):
			cur.Run = strings.TrimSpace(line[len("run:"):])
			if _, err := regexp.Compile(cur.Run); err != nil {
				return nil, fmt.Errorf("line %d: run pattern of %q: %w", n, cur.Name, err)
			}
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
		default:
			return nil, fmt.Errorf("line %d: %q: want file:, pkg:, run:, - or + in %q", n, line, cur.Name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// ErrStale is wrapped when a mutation no longer applies to the tree.
var ErrStale = errors.New("mutation list out of step with the code")

// Apply returns src with m applied; the original must occur exactly once.
func Apply(m Mutation, src []byte) ([]byte, error) {
	switch n := bytes.Count(src, []byte(m.From)); n {
	case 1:
	case 0:
		return nil, fmt.Errorf("%w: line %d: mutation %q: original text not found in %s (update the list):\n%s", ErrStale, m.Line, m.Name, m.File, m.From)
	default:
		return nil, fmt.Errorf("%w: line %d: mutation %q: original text found %d times in %s (give more context):\n%s", ErrStale, m.Line, m.Name, n, m.File, m.From)
	}
	return bytes.Replace(src, []byte(m.From), []byte(m.To), 1), nil
}

// Result of one mutation.
type Result struct {
	Killed bool
	// By names the failing tests, or "timeout".
	By      string
	Elapsed time.Duration
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

// buildFailed matches go test's words for a test binary that was not
// built: a mutation that does not compile is a broken entry, not a kill.
var buildFailed = regexp.MustCompile(`(?m)\[build failed\]|\[setup failed\]|^# \S+|cannot find package`)

// runTests runs m.Pkgs' tests with the overlay (none when overlay is
// ""). It returns whether they failed and why, or an error when they
// could not be run at all.
func runTests(ctx context.Context, goCmd, root string, m Mutation, overlay string, timeout time.Duration) (Result, string, error) {
	args := []string{"test", "-count=1", "-failfast"}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	if m.Run != "" {
		args = append(args, "-run", m.Run)
	}
	args = append(args, m.Pkgs...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = root
	// The whole group is killed on timeout: go test's child test binary
	// would otherwise outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	res := Result{Elapsed: time.Since(start)}
	text := out.String()
	switch {
	case ctx.Err() != nil:
		res.Killed, res.By = true, "timeout after "+timeout.String()
		return res, text, nil
	case err == nil:
		return res, text, nil
	case buildFailed.MatchString(text):
		return res, text, fmt.Errorf("go %s: does not build:\n%s", strings.Join(args, " "), text)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return res, text, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	var by []string
	for _, sm := range failLine.FindAllStringSubmatch(text, -1) {
		by = append(by, sm[1])
	}
	if len(by) == 0 {
		by = []string{"exit status " + fmt.Sprint(ee.ExitCode())}
	}
	res.Killed, res.By = true, strings.Join(by, ", ")
	return res, text, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	list := fs.String("list", "tools/mutate/mutations.txt", "the mutation list, relative to the module root")
	only := fs.String("only", "", "run only the mutations whose name contains this")
	check := fs.Bool("check", false, "only check that every mutation applies to the tree")
	timeout := fs.Duration("timeout", 3*time.Minute, "time limit of one mutation's tests (a timeout kills it)")
	goCmd := fs.String("go", "go", "the go command")
	verbose := fs.Bool("v", false, "print the test output of survivors and broken entries")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(stderr, "mutate:", err)
		return 2
	}
	f, err := os.Open(filepath.Join(root, *list))
	if err != nil {
		fmt.Fprintln(stderr, "mutate:", err)
		return 2
	}
	muts, err := ParseList(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "mutate: %s: %v\n", *list, err)
		return 2
	}
	var sel []Mutation
	for _, m := range muts {
		if strings.Contains(m.Name, *only) {
			sel = append(sel, m)
		}
	}
	if len(sel) == 0 {
		fmt.Fprintf(stderr, "mutate: no mutation matches %q\n", *only)
		return 2
	}
	// Every entry is checked before any test runs, so a stale list fails
	// at once.
	mutated := make([][]byte, len(sel))
	stale := 0
	for i, m := range sel {
		src, err := os.ReadFile(filepath.Join(root, m.File))
		if err == nil {
			mutated[i], err = Apply(m, src)
		}
		if err != nil {
			fmt.Fprintln(stderr, "mutate:", err)
			stale++
		}
	}
	if stale > 0 {
		fmt.Fprintf(stderr, "mutate: %d of %d mutations do not apply to the tree\n", stale, len(sel))
		return 2
	}
	if *check {
		fmt.Fprintf(stdout, "mutate: all %d mutations apply\n", len(sel))
		return 0
	}
	dir, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		fmt.Fprintln(stderr, "mutate:", err)
		return 2
	}
	defer os.RemoveAll(dir)

	start := time.Now()
	// Baseline: the named tests must pass on the tree as it is, or every
	// mutation would look killed.
	base := map[string]bool{}
	for _, m := range sel {
		k := strings.Join(m.Pkgs, " ") + "\x00" + m.Run
		if base[k] {
			continue
		}
		base[k] = true
		res, text, err := runTests(ctx, *goCmd, root, m, "", *timeout)
		if err == nil && res.Killed {
			err = fmt.Errorf("tests fail without any mutation (%s)", res.By)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mutate: baseline %s -run %q: %v\n%s", strings.Join(m.Pkgs, " "), m.Run, err, tail(text, 40))
			return 2
		}
		fmt.Fprintf(stdout, "baseline  %-40s %5.1fs\n", strings.Join(m.Pkgs, " ")+" "+m.Run, res.Elapsed.Seconds())
	}
	killed, survived, broken := 0, 0, 0
	var survivors []string
	for i, m := range sel {
		src := filepath.Join(dir, fmt.Sprintf("m%03d_%s", i, filepath.Base(m.File)))
		if err := os.WriteFile(src, mutated[i], 0o600); err != nil {
			fmt.Fprintln(stderr, "mutate:", err)
			return 2
		}
		ov, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, m.File): src}})
		ovPath := filepath.Join(dir, fmt.Sprintf("m%03d.json", i))
		if err := os.WriteFile(ovPath, ov, 0o600); err != nil {
			fmt.Fprintln(stderr, "mutate:", err)
			return 2
		}
		res, text, err := runTests(ctx, *goCmd, root, m, ovPath, *timeout)
		switch {
		case err != nil:
			broken++
			fmt.Fprintf(stdout, "BROKEN    %-44s line %d: %v\n", m.Name, m.Line, firstLine(err.Error()))
			if *verbose {
				fmt.Fprint(stdout, tail(text, 40))
			}
		case res.Killed:
			killed++
			fmt.Fprintf(stdout, "killed    %-44s %5.1fs  by %s\n", m.Name, res.Elapsed.Seconds(), res.By)
		default:
			survived++
			survivors = append(survivors, m.Name)
			fmt.Fprintf(stdout, "SURVIVED  %-44s %5.1fs  (%s, line %d of the list)\n", m.Name, res.Elapsed.Seconds(), m.File, m.Line)
			if *verbose {
				fmt.Fprint(stdout, tail(text, 20))
			}
		}
	}
	total := killed + survived
	score := 0.0
	if total > 0 {
		score = 100 * float64(killed) / float64(total)
	}
	fmt.Fprintf(stdout, "mutations: %d, killed %d, survived %d, broken %d; score %d/%d = %.1f%%; %s\n",
		len(sel), killed, survived, broken, killed, total, score, time.Since(start).Round(time.Second))
	switch {
	case broken > 0:
		return 2
	case survived > 0:
		fmt.Fprintf(stdout, "survivors (each is a missing test): %s\n", strings.Join(survivors, ", "))
		return 1
	}
	return 0
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = up
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
