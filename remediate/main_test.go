package remediate

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
)

// helperEnv makes the test binary behave as one of helperCommands instead
// of running tests (the os/exec TestMain pattern). Its value is the
// helper's name and arguments: "exit 3". The helpers are generic process
// behaviours, not a fake ESXi; the simulated host is esxsim.
const helperEnv = "HEAPGUARD_REMEDIATE_TEST_HELPER"

var helperCommands = map[string]func(args []string){
	// exit N exits with status N, printing nothing.
	"exit": func(args []string) {
		n := 0
		if len(args) > 0 {
			n, _ = strconv.Atoi(args[0])
		}
		os.Exit(n)
	},
	// hang sleeps until killed.
	"hang": func([]string) {
		time.Sleep(time.Hour)
	},
	// stderrfail writes its argv to stderr and exits 1.
	"stderrfail": func([]string) {
		fmt.Fprintf(os.Stderr, "some stderr text for %s\n", strings.Join(os.Args[1:], " "))
		os.Exit(1)
	},
	// holdlock DIR [pidfile [UPTIME]] takes the lock in DIR, prints
	// "locked", and keeps it until stdin is closed. UPTIME is the host's
	// uptime in seconds as this process sees it.
	"holdlock": func(args []string) {
		if len(args) > 2 {
			up, _ := strconv.ParseInt(args[2], 10, 64)
			uptime = func() int64 { return up }
		}
		l, err := acquireLock(args[0], len(args) < 2 || args[1] != "pidfile")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	},
	// contend DIR HOLDS prints "ready", waits for stdin to close, then
	// races for the pid-file lock in DIR (see contend).
	"contend": func(args []string) {
		holds, _ := strconv.Atoi(args[1])
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		if err := contend(args[0], holds); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	},
}

var (
	helpersMu   sync.Mutex
	helpersUsed = map[string]bool{}
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		f := strings.Fields(spec)
		h, ok := helperCommands[f[0]]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", f[0])
			os.Exit(2)
		}
		h(f[1:])
		os.Exit(0)
	}
	// As bin/vim-cmd, etc/init.d/vpxa, … of a simulated host (esxsim.New
	// plus InstallBinary), the test binary is esxsim's multi-call tool.
	if esxsim.IsMultiCall() {
		os.Exit(esxsim.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	flag.Parse()
	code := m.Run()
	// Like os/exec's tests: a helper no test uses any more is stale.
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && !testing.Short() {
		for name := range helperCommands {
			if !helpersUsed[name] {
				fmt.Fprintf(os.Stderr, "helper %q is never used\n", name)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// helperEnvVar returns the environment entry selecting a helper.
func helperEnvVar(spec string) string {
	helpersMu.Lock()
	helpersUsed[strings.Fields(spec)[0]] = true
	helpersMu.Unlock()
	return helperEnv + "=" + spec
}

// helperRoot lays out a host root whose vim-cmd and init scripts are the
// test binary, and a runner that makes them behave as spec.
func helperRoot(t *testing.T, spec string, hostPaths ...string) (string, host.Exec) {
	t.Helper()
	root := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]string{"/bin/vim-cmd"}, hostPaths...) {
		if p == "" {
			continue
		}
		dst := host.Path(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, dst); err != nil {
			t.Fatal(err)
		}
	}
	return root, host.Exec{Root: root, Env: []string{helperEnvVar(spec)}}
}

// startHelper runs a helper as a child process and waits for its first
// stdout line.
func startHelper(t *testing.T, spec string) (stdin io.WriteCloser, firstLine string, wait func() error, pid int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnvVar(spec))
	stdin, err = cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	return stdin, strings.TrimSpace(line), cmd.Wait, cmd.Process.Pid
}
