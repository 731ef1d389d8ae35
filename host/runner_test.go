package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/testtool"
)

// helpers are failure modes the test binary plays when re-executed under
// their name (the os/exec tests' pattern): real processes, no mocks.
var helpers = map[string]func(args []string) int{
	"echoargs": func(args []string) int {
		for _, a := range args {
			fmt.Printf("[%s]\n", a)
		}
		return 0
	},
	"exit": func(args []string) int {
		var code int
		fmt.Sscan(args[0], &code)
		return code
	},
	"stderrfail": func([]string) int {
		fmt.Fprintln(os.Stderr, "vim.fault.ToolsUnavailable")
		fmt.Fprintln(os.Stderr, "second line")
		return 1
	},
	"hang": func([]string) int {
		time.Sleep(time.Hour)
		return 0
	},
	"flood": func([]string) int {
		b := []byte(strings.Repeat("x", 1<<16))
		for i := 0; i < 200; i++ { // 12.5 MiB, more than maxOutput
			os.Stdout.Write(b)
		}
		return 0
	},
}

var used = map[string]bool{}

func TestMain(m *testing.M) {
	if f, ok := helpers[filepath.Base(os.Args[0])]; ok {
		os.Exit(f(os.Args[1:]))
	}
	code := m.Run()
	if code == 0 && testing.Short() == false {
		for name := range helpers {
			if !used[name] {
				fmt.Fprintf(os.Stderr, "helper %q was never used\n", name)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// rootWith makes a host root whose bin/ holds the test binary under the
// helpers' names.
func rootWith(t *testing.T, names ...string) string {
	t.Helper()
	root := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		used[n] = true
		if err := os.Symlink(self, filepath.Join(bin, n)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestExecArgvIsNeverAShell(t *testing.T) {
	root := rootWith(t, "echoargs")
	name := "web 01 (prod); $(x) `y` | z"
	res, err := Exec{Root: root}.Run(context.Background(), 5*time.Second, "echoargs", name, "")
	if err != nil {
		t.Fatal(err)
	}
	want := "[" + name + "]\n[]\n"
	if string(res.Stdout) != want {
		t.Errorf("stdout = %q, want %q", res.Stdout, want)
	}
	if res.ExitCode != 0 {
		t.Errorf("exit code = %d", res.ExitCode)
	}
}

func TestExecAbsolutePathUnderRoot(t *testing.T) {
	root := rootWith(t, "exit")
	res, err := Exec{Root: root}.Run(context.Background(), 5*time.Second, "/bin/exit", "0")
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run /bin/exit under root: %v (exit %d)", err, res.ExitCode)
	}
}

func TestExecFailures(t *testing.T) {
	root := rootWith(t, "exit", "stderrfail", "hang", "flood")
	x := Exec{Root: root}
	tests := []struct {
		name     string
		argv     []string
		timeout  time.Duration
		wantCode int
		wantErr  string
		timedOut bool
	}{
		{name: "exit 3", argv: []string{"exit", "3"}, wantCode: 3, wantErr: "exit status 3"},
		{name: "stderr first line", argv: []string{"stderrfail"}, wantCode: 1, wantErr: "vim.fault.ToolsUnavailable"},
		{name: "hang times out", argv: []string{"hang"}, timeout: 200 * time.Millisecond, wantCode: -1, wantErr: "timed out", timedOut: true},
		{name: "missing command", argv: []string{"no-such-command-here"}, wantCode: -1, wantErr: "executable file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := x.Run(context.Background(), tt.timeout, tt.argv...)
			if err == nil {
				t.Fatal("want an error")
			}
			var cerr *CommandError
			if !errors.As(err, &cerr) {
				t.Fatalf("error %T is not a *CommandError", err)
			}
			if res.ExitCode != tt.wantCode || cerr.ExitCode != tt.wantCode {
				t.Errorf("exit code = %d/%d, want %d", res.ExitCode, cerr.ExitCode, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.argv[0]) {
				t.Errorf("error %q does not name the command", err)
			}
			if got := errors.Is(err, ErrTimeout); got != tt.timedOut {
				t.Errorf("errors.Is(err, ErrTimeout) = %v", got)
			}
			if tt.timedOut && time.Since(start) > 5*time.Second {
				t.Errorf("timeout took %s", time.Since(start))
			}
		})
	}
	t.Run("flood is capped", func(t *testing.T) {
		res, err := x.Run(context.Background(), 10*time.Second, "flood")
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Stdout) != maxOutput {
			t.Errorf("kept %d bytes of stdout, want the cap %d", len(res.Stdout), maxOutput)
		}
	})
}

func TestExecCancel(t *testing.T) {
	root := rootWith(t, "hang")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := Exec{Root: root}.Run(ctx, time.Minute, "hang")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestExecRealRootSystemFolders: on the real root a bare name is found in
// /sbin and /usr/sbin though the inherited PATH lacks them (cron, inetd),
// and they come first in the command's PATH.
func TestExecRealRootSystemFolders(t *testing.T) {
	sbin := ""
	for _, p := range []string{"/sbin/ldconfig", "/usr/sbin/ldconfig"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			sbin = p
			break
		}
	}
	if sbin == "" {
		testtool.Missing(t, "/sbin/ldconfig", "libc-bin")
	}
	t.Setenv("PATH", t.TempDir())
	x := Exec{Root: "/"}
	got, err := x.lookPath("ldconfig")
	if err != nil || got != sbin {
		t.Fatalf("lookPath(ldconfig) with PATH lacking /sbin = %q, %v; want %s", got, err, sbin)
	}
	var path string
	for _, kv := range x.environ() {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	if !strings.HasPrefix(path, "/bin:/sbin:/usr/bin:/usr/sbin:") {
		t.Errorf("the command's PATH is %q, want the system folders first", path)
	}
}
