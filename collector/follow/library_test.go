package follow

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/google/go-cmp/cmp"
	"github.com/nxadm/tail"
)

// The tests below pin down hazards of github.com/nxadm/tail v1.4.11 that
// the wrapper exists for (doc.go lists them with file:line). If one starts
// failing after a library upgrade, the hazard is gone: revisit the wrapper.

// libraryFollowConfig is the library's own way to follow a log (tail -F),
// the configuration the wrapper avoids.
func libraryFollowConfig() tail.Config {
	return tail.Config{Follow: true, ReOpen: true, Poll: true, MustExist: false,
		CompleteLines: true, Logger: tail.DiscardingLogger}
}

// helpers are functions the test binary runs instead of the tests when
// FOLLOW_TEST_HELPER names one (the os/exec tests' pattern).
var helpers = map[string]func(args []string) int{
	// libfollow follows args[0] with the library and prints each line.
	"libfollow": func(args []string) int {
		t, err := tail.TailFile(args[0], libraryFollowConfig())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		for l := range t.Lines {
			fmt.Println(l.Text)
		}
		return 0
	},
}

var helpersUsed = map[string]bool{}

func TestMain(m *testing.M) {
	if name := os.Getenv("FOLLOW_TEST_HELPER"); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h(strings.Split(os.Getenv("FOLLOW_TEST_ARGS"), "\x00")))
	}
	code := m.Run()
	// With every test run, a helper nobody used is a stale one.
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		for name := range helpers {
			if !helpersUsed[name] {
				fmt.Fprintf(os.Stderr, "helper %q was never used\n", name)
				code = 1
			}
		}
	}
	os.Exit(code)
}

func helperCommand(ctx context.Context, t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	helpersUsed[name] = true
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FOLLOW_TEST_HELPER="+name, "FOLLOW_TEST_ARGS="+strings.Join(args, "\x00"))
	return cmd
}

// TestLibraryExitsOnStatError: the library's poll goroutine calls os.Exit(1)
// when stat fails with ENOTDIR (watch/polling.go:81, util/util.go:24), a
// thing no recover can stop. TestFollowSurvivesStatError is the wrapper in
// the same spot.
func TestLibraryExitsOnStatError(t *testing.T) {
	// The library sometimes notices the change another way first (its
	// reader hits the end of the old file and it closes Lines cleanly), so
	// the hazard is shown when any of a few attempts dies with its FATAL.
	var got []string
	for attempt := 0; attempt < 5; attempt++ {
		exited, detail := libraryStatErrorAttempt(t)
		if exited {
			return
		}
		got = append(got, detail)
	}
	t.Fatalf("the library never exited the process on ENOTDIR in 5 attempts: %q", got)
}

// libraryStatErrorAttempt runs the library in a child on a log whose
// folder turns into a file, and reports whether the child died with the
// library's FATAL line and exit status 1.
func libraryStatErrorAttempt(t *testing.T) (bool, string) {
	t.Helper()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logDir, "vmkernel.log")
	appendFile(t, path, "a1\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := helperCommand(ctx, t, "libfollow", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "a1" {
		t.Fatalf("helper printed %q, want a1", sc.Text())
	}
	// The log folder becomes a file in one step (RENAME_EXCHANGE), so stat of
	// the log goes straight to ENOTDIR: a rename then a create would leave a
	// moment of ENOENT, which the library takes for a deleted file and stops
	// without exiting (the test was flaky that way).
	swap := filepath.Join(dir, "swap")
	appendFile(t, swap, "x\n")
	if err := unix.Renameat2(unix.AT_FDCWD, swap, unix.AT_FDCWD, logDir, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("RENAME_EXCHANGE not supported here: %v", err)
	}
	for sc.Scan() {
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "FATAL -- Failed to stat file") {
		return false, fmt.Sprintf("ended with %v, stderr %q", err, stderr.String())
	}
	return true, ""
}

// libraryCollect follows path with the library in Follow mode and returns
// a function that waits for n more lines.
func libraryCollect(t *testing.T, path string) func(n int) []string {
	t.Helper()
	tl, err := tail.TailFile(path, libraryFollowConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Stop() })
	return func(n int) []string {
		t.Helper()
		var got []string
		for len(got) < n {
			select {
			case l, ok := <-tl.Lines:
				if !ok {
					t.Fatalf("library stopped: %v", tl.Err())
				}
				got = append(got, l.Text)
			case <-time.After(3 * time.Second):
				t.Fatalf("library gave %q, waited for %d lines", got, n)
			}
		}
		return got
	}
}

// TestLibraryMissesRegrow: truncated and grown past the old offset within
// one poll, the file looks appended to (watch/polling.go:91-102), and the
// library goes on from the old offset in the middle of the new data.
func TestLibraryMissesRegrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, "a1\na2\n")
	next := libraryCollect(t, path)
	next(2)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "b1\nb2\nb3\n")
	got := next(1)
	if got[0] == "b1" {
		t.Skip("a library poll fell between truncate and regrow; hazard not shown this time")
	}
	if diff := cmp.Diff([]string{"b3"}, got); diff != "" {
		t.Errorf("library read after regrow (-want +got):\n%s", diff)
	}
}

// TestLibraryLosesTailOnRotation: lines written just before the rename are
// never read; the library opens the new file at once (tail.go:389-399).
func TestLibraryLosesTailOnRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, "a1\n")
	next := libraryCollect(t, path)
	next(1)
	appendFile(t, path, "a2\na3\n")
	if err := os.Rename(path, path+".0"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "b1\n")
	got := next(1)
	if got[0] == "a2" {
		t.Skip("a library poll fell between the append and the rename; hazard not shown this time")
	}
	if diff := cmp.Diff([]string{"b1"}, got); diff != "" {
		t.Errorf("library read after rotation (-want +got):\n%s", diff)
	}
}

func TestLibraryRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, "a1\na22\na333\npartial")
	tests := []struct {
		name string
		from int64
		want []libLine
	}{
		{"from start", 0, []libLine{{[]byte("a1"), 3}, {[]byte("a22"), 7}, {[]byte("a333"), 12}}},
		{"from a line start", 7, []libLine{{[]byte("a333"), 12}}},
		{"only the partial line", 12, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := libraryRead(path, tt.from, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(libLine{})); diff != "" {
				t.Errorf("libraryRead (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := libraryRead(path+".missing", 0, time.Second); !errors.Is(err, ErrLibrary) {
		t.Errorf("missing file: err = %v, want ErrLibrary", err)
	}
}

// TestFollowLibraryFails: whatever the library does wrong, the lines come
// anyway (read by the wrapper itself), each once, and it is counted.
func TestFollowLibraryFails(t *testing.T) {
	tests := []struct {
		name string
		read func(path string, from int64, timeout time.Duration) ([]libLine, error)
	}{
		{"panic", func(string, int64, time.Duration) ([]libLine, error) { panic("boom") }},
		{"error", func(string, int64, time.Duration) ([]libLine, error) {
			return nil, fmt.Errorf("%w: stopped", ErrLibrary)
		}},
		{"real library", libraryRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vmkernel.log")
			h := follow(t, path, Position{}, true, Options{})
			h.f.libRead = tt.read // the follower sleeps: no race
			appendFile(t, path, lines("a", 1, 3))
			h.step()
			appendFile(t, path, lines("a", 4, 2))
			h.step()
			checkLines(t, h, want(lines("a", 1, 5)))
			st := h.f.Stats()
			wantErrs := uint64(2)
			if tt.name == "real library" {
				wantErrs = 0
			}
			if st.LibraryErrors != wantErrs || st.Restarts != wantErrs {
				t.Errorf("stats = %+v, want %d library errors and restarts", st, wantErrs)
			}
			if tt.name == "real library" && st.LibraryReads != 2 {
				t.Errorf("stats = %+v, want 2 library reads", st)
			}
		})
	}
}
