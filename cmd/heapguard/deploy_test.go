package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heapguard/heapguard/internal/deploytest"
	"golang.org/x/crypto/ssh"
)

// deployEnv keeps the developer's agent, keys and password out.
func deployEnv(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv(passwordEnv, "")
}

// countingListener counts the connections a host would get.
func countingListener(t *testing.T) (string, *atomic.Int32) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), &n
}

// TestDeployRefusesBinaryBeforeConnecting: a stock build, a dynamic one
// and (by default) this test binary are refused before any connection.
func TestDeployRefusesBinaryBeforeConnecting(t *testing.T) {
	deployEnv(t)
	addr, conns := countingListener(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("x\n"), 0o600)
	for _, tc := range []struct {
		binary []string
		want   string
	}{
		{[]string{"--binary", deploytest.ELF{Payload: "stock"}.Write(t, dir, "stock")}, "stock Go runtime"},
		{[]string{"--binary", deploytest.ELF{Marker: true, Interp: true}.Write(t, dir, "dyn")}, "dynamically linked"},
		{nil, "not a heapguard binary for ESXi"},
	} {
		args := append([]string{"deploy", "--password-file", pw, "--known-hosts", filepath.Join(dir, "kh")}, tc.binary...)
		code, out, stderr := runCLI(t, append(args, addr)...)
		if code != exitUnknown || out != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 3 and %q", tc.binary, code, out, stderr, tc.want)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections made for binaries that were refused", n)
	}
}

func TestDeployUsage(t *testing.T) {
	deployEnv(t)
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("# lab\nesx01\n\nesx02:99999\n"), 0o600)
	good := deploytest.ELF{Marker: true}.Write(t, dir, "heapguard")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "--binary", good}, "heapguard deploy: no host given\nUsage: heapguard deploy "},
		{[]string{"deploy", "--binary", good, "--hosts", hosts}, `heapguard deploy: hosts file ` + hosts + `: line 4: bad host "esx02:99999": port "99999": want 1 to 65535`},
		{[]string{"deploy", "--binary", good, "--hosts", filepath.Join(dir, "absent")}, "heapguard deploy: hosts file: open "},
		{[]string{"deploy", "--binary", good, "esx01:22", "::1"}, "heapguard deploy: bad host \"::1\": an IPv6 address goes in brackets"},
		{[]string{"deploy", "--binary", good, "--dest", "relative", "esx01"}, `heapguard deploy: --dest "relative": want an absolute path`},
		{[]string{"deploy", "--password", "x", "esx01"}, "flag provided but not defined: -password"},
		{[]string{"deploy", "--binary", good, "esx01"}, "no way to log in"},
		{[]string{"deploy", "--binary", good, "--copy-timeout", "0s", "esx01"}, "timeouts must be more than 0"},
		{[]string{"deploy", "--binary", good, "--host-timeout", "0s", "esx01"}, "timeouts must be more than 0"},
		{[]string{"deploy", "--binary", good, "--parallel", "0", "esx01"}, "heapguard deploy: --parallel 0: want 1 or more"},
		{[]string{"deploy", "--vib", good, "esx01"}, "heapguard deploy: VIB " + good + ": "},
		{[]string{"deploy", "--vib", good, "--binary", good, "esx01"}, "heapguard deploy: --vib goes alone"},
		{[]string{"deploy", "--binary", good, "--mode", "systemd", "esx01"}, `heapguard deploy: --mode: mode "systemd": want cron, daemon, inetd or none`},
		{[]string{"deploy", "--binary", good, "--schedule", "* * *", "esx01"}, `heapguard deploy: schedule "* * *": want the 5 crontab time fields`},
		{[]string{"deploy", "--binary", good, "esx01", "--", "--power-off-alow", "x"}, "heapguard deploy: after --: heapguard check: flag provided but not defined: -power-off-alow"},
		{[]string{"deploy", "--binary", good, "esx01", "--", "--config", "x"}, "heapguard deploy: after --: --config is deploy's to set"},
		{[]string{"deploy", "--binary", good, "--mode", "daemon", "esx01", "--", "--interval", "30s;reboot"}, "heapguard deploy: after --: heapguard run: invalid value"},
		{[]string{"deploy", "--binary", good, "--mode", "none", "esx01", "--", "--dry-run"}, "heapguard deploy: after --: --mode none runs nothing"},
		{[]string{"deploy", "--binary", good, "--status", "esx01", "--", "--dry-run"}, "heapguard deploy: --uninstall, --status and --probe-only go alone"},
	} {
		code, out, stderr := runCLI(t, tc.args...)
		if code != exitUnknown || out != "" || !strings.HasPrefix(stderr, tc.want) && !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %.300q; want 3 and %q", tc.args, code, out, stderr, tc.want)
		}
	}
}

// TestDeployTwoHosts: over real sshds, one host known and one not. The
// unknown one fails with its fingerprint and the known one is installed;
// the exit status says a host failed; with --accept-new the next run
// reaches both and finds the binary there.
func TestDeployTwoHosts(t *testing.T) {
	deployEnv(t)
	dir := t.TempDir()
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(userKey)
	block, _ := ssh.MarshalPrivateKey(userKey, "")
	keyFile := filepath.Join(dir, "id_test")
	os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)
	opts := deploytest.Options{HostKeys: []string{"ecdsa"}, Authorized: []ssh.PublicKey{signer.PublicKey()}}
	a, b := deploytest.Start(t, opts), deploytest.Start(t, opts)
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(a.KnownHostsLine("ecdsa")+"\n"), 0o600)
	hosts := filepath.Join(dir, "hosts")
	// The unknown host first: its failure must not stop the other.
	os.WriteFile(hosts, fmt.Appendf(nil, "# two\n%s\n%s\n", b.Addr, a.Addr), 0o600)
	bin := deploytest.ELF{Marker: true, Payload: strings.Repeat("heapguard", 1000)}
	binPath := bin.Write(t, dir, "heapguard")
	sum := sha256.Sum256(bin.Bytes())
	short := hex.EncodeToString(sum[:])[:12]
	dest := filepath.Join(dir, "datastore1", "heapguard")
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	// One after another: the lines come in a known order.
	args := []string{"deploy", "--mode", "none", "--parallel", "1", "-i", keyFile, "--known-hosts", known, "--binary", binPath, "--dest", dest, "--user", user, "--hosts", hosts}

	code, out, stderr := runCLI(t, args...)
	out, _, _ = strings.Cut(out, "\n\nHOST ") // the table, tested elsewhere
	lines, probes := resultLines(out)
	final := filepath.Join(dest, "heapguard")
	wantA := fmt.Sprintf("%s@%s  installed  sha256:%s  %s", user, a.Addr, short, final)
	fpB := ssh.FingerprintSHA256(b.HostKeys["ecdsa"])
	if code != exitCritical || len(lines) != 2 || lines[1] != wantA ||
		!regexp.MustCompile(`^`+regexp.QuoteMeta(user+"@"+b.Addr)+`  failed  .*unknown host key.*ecdsa-sha2-nistp256 key `+regexp.QuoteMeta(fpB)).MatchString(lines[0]) ||
		!strings.Contains(stderr, "1 of 2 hosts failed") {
		t.Fatalf("first run: exit %d\nstdout:\n%s\nstderr:\n%s\nwant 2, b failed with %s, then %q", code, out, stderr, fpB, wantA)
	}
	// Only the host reached was probed (these sshds have no ESXi tools).
	if len(probes) != 1 || !strings.HasPrefix(probes[0], user+"@"+a.Addr+"  version unknown  execInstalledOnly runtime unknown") {
		t.Errorf("probe lines %q: want one for %s, with unknowns", probes, a.Addr)
	}
	if got, _ := os.ReadFile(final); sha256.Sum256(got) != sum {
		t.Fatal("installed file differs from the binary")
	}

	code, out, stderr = runCLI(t, append(args, "--accept-new")...)
	out, _, _ = strings.Cut(out, "\nHOST ")
	// Both sshds stand for hosts sharing one datastore: b finds a's copy.
	lines, _ = resultLines(out)
	want := fmt.Sprintf("%s@%s  unchanged  sha256:%s  %s\n%s@%s  unchanged  sha256:%s  %s", user, b.Addr, short, final, user, a.Addr, short, final)
	if code != exitOK || strings.Join(lines, "\n") != want || !strings.Contains(stderr, "added ecdsa-sha2-nistp256 key "+fpB) {
		t.Errorf("second run: exit %d\nstdout:\n%s\nstderr:\n%s\nwant 0 and\n%s", code, out, stderr, want)
	}
}

// resultLines splits deploy's output into the hosts' result lines and the
// probe lines (warnings left out).
func resultLines(out string) (results, probes []string) {
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) < 2 || f[1] == "warning" || f[1] == "doctor" || f[1] == "done" || f[1] == "found":
		case f[1] == "installed" || f[1] == "unchanged" || f[1] == "upgraded" || f[1] == "failed" || f[1] == "probed":
			results = append(results, l)
		default:
			probes = append(probes, l)
		}
	}
	return results, probes
}

func TestDeployPasswordSources(t *testing.T) {
	deployEnv(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("from-file\r\nsecond line\n"), 0o600)
	auth, done, err := deployAuth(&deployOptions{passwordFile: pwFile}, "", -1, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if pw, err := auth.Password(); pw != "from-file" || err != nil {
		t.Errorf("--password-file: %q, %v", pw, err)
	}
	t.Setenv(passwordEnv, "from-env")
	auth, done, err = deployAuth(&deployOptions{}, "", -1, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if pw, err := auth.Password(); pw != "from-env" || err != nil {
		t.Errorf("$%s: %q, %v", passwordEnv, pw, err)
	}
	os.WriteFile(pwFile, []byte("\n"), 0o600)
	if _, _, err := deployAuth(&deployOptions{passwordFile: pwFile}, "", -1, os.Stderr); err == nil || !strings.Contains(err.Error(), "first line empty") {
		t.Errorf("empty password file: %v", err)
	}
}

// TestDeployFleet: five real sshds at once, the third with a key known
// hosts does not hold. Four are done, one fails; a line for each as it
// finishes, then the table in the order given; exit 2.
func TestDeployFleet(t *testing.T) {
	deployEnv(t)
	dir := t.TempDir()
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(userKey)
	block, _ := ssh.MarshalPrivateKey(userKey, "")
	keyFile := filepath.Join(dir, "id_test")
	os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)
	opts := deploytest.Options{HostKeys: []string{"ecdsa"}, Authorized: []ssh.PublicKey{signer.PublicKey()}}
	var known, hosts strings.Builder
	var addrs []string
	for i := range 5 {
		s := deploytest.Start(t, opts)
		if i != 2 {
			known.WriteString(s.KnownHostsLine("ecdsa") + "\n")
		}
		hosts.WriteString(s.Addr + "\n")
		addrs = append(addrs, s.Addr)
	}
	knownFile, hostsFile := filepath.Join(dir, "known_hosts"), filepath.Join(dir, "hosts")
	os.WriteFile(knownFile, []byte(known.String()), 0o600)
	os.WriteFile(hostsFile, []byte(hosts.String()), 0o600)
	bin := deploytest.ELF{Marker: true, Payload: strings.Repeat("heapguard", 20000)}
	binPath := bin.Write(t, dir, "heapguard")
	sum := sha256.Sum256(bin.Bytes())
	short := hex.EncodeToString(sum[:])[:12]
	// The five share one datastore, as hosts often do.
	dest := filepath.Join(dir, "datastore1", "heapguard")
	final := filepath.Join(dest, "heapguard")
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	code, out, stderr := runCLI(t, "deploy", "--mode", "none", "-i", keyFile, "--known-hosts", knownFile, "--binary", binPath,
		"--dest", dest, "--user", user, "--host-timeout", "20s", "--hosts", hostsFile)
	linesPart, table, ok := strings.Cut(out, "\n\n")
	lines, probes := resultLines(linesPart) // each host's probe and warnings come first
	if code != exitCritical || !ok || len(lines) != 5 || len(probes) != 4 || !strings.Contains(stderr, "1 of 5 hosts failed") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant 2, five lines and a table", code, out, stderr)
	}
	lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(user) + `@127\.0\.0\.1:\d+  ((installed|unchanged)  sha256:` + short + `  ` + regexp.QuoteMeta(final) + `|failed  .*unknown host key.*)$`)
	seen := map[string]bool{}
	for _, l := range lines {
		if !lineRE.MatchString(l) {
			t.Errorf("line %q", l)
		}
		host, _, _ := strings.Cut(l, "  ")
		seen[host] = true
	}
	if len(seen) != 5 {
		t.Errorf("lines name %d hosts, want 5: %q", len(seen), lines)
	}
	rows := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(rows) != 6 || !strings.HasPrefix(rows[0], "HOST ") {
		t.Fatalf("table:\n%s", table)
	}
	for i, row := range rows[1:] {
		f := strings.Fields(row)
		wantHost := user + "@" + addrs[i]
		switch {
		case len(f) < 4 || f[0] != wantHost:
			t.Errorf("table row %d %q: want host %s", i, row, wantHost)
		case i == 2 && (f[1] != "failed" || !strings.Contains(row, "unknown host key")):
			t.Errorf("table row %d %q: want failed, unknown host key", i, row)
		case i != 2 && (f[1] != "installed" && f[1] != "unchanged" || f[2] != short || f[3] != final):
			t.Errorf("table row %d %q: want installed %s %s", i, row, short, final)
		}
	}
	if got, _ := os.ReadFile(final); sha256.Sum256(got) != sum {
		t.Error("installed file differs from the binary")
	}
	if m, _ := filepath.Glob(filepath.Join(dest, ".heapguard.*")); len(m) > 0 {
		t.Errorf("partial copies left: %q", m)
	}
}

// TestDeployPrintsNoControlCharacters: what a host says (its error output,
// mount points) reaches the admin's terminal without escape sequences.
func TestDeployPrintsNoControlCharacters(t *testing.T) {
	hostile := "root@esx01:22  failed  remote \"rm\": exit status 1: \x1b]0;owned\x07\x1b[2J\r\x9bstill one line\ttab"
	got := printable(hostile)
	if strings.ContainsAny(got, "\x1b\x07\r\x9b") || !strings.Contains(got, "still one line\ttab") {
		t.Errorf("printable(%q) = %q", hostile, got)
	}
	var b strings.Builder
	printableWriter{&b}.Write([]byte("HOST  RESULT\nh1  failed  \x1b[31mred\n"))
	if b.String() != "HOST  RESULT\nh1  failed  ?[31mred\n" {
		t.Errorf("table through printableWriter: %q", b.String())
	}
}
