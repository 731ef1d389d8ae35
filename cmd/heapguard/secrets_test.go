package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/heapguard/heapguard/deploy"
	"github.com/heapguard/heapguard/internal/deploytest"
)

// plantedSecret is a password no test or host uses otherwise: wherever it
// shows up in output, it leaked.
const plantedSecret = "Pl4nted-S3cret-7f1c"

// secretServer is deploytest.PasswordServer (see there) accepting accept.
func secretServer(t *testing.T, accept string, kbd bool) (string, string) {
	t.Helper()
	return deploytest.PasswordServer(t, accept, kbd)
}

// noSecret fails the test when out holds any of secrets.
func noSecret(t *testing.T, what, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s: the secret %q is in the output:\n%s", what, s, out)
		}
	}
}

// TestDeployNeverPrintsThePassword: the SSH password, from
// $HEAPGUARD_SSH_PASSWORD or --password-file, is in no output of deploy:
// not when the host refuses it (either method), not when the host takes it
// and a later step fails, not with --probe-only or --status.
func TestDeployNeverPrintsThePassword(t *testing.T) {
	dir := t.TempDir()
	bin := deploytest.ELF{Marker: true, Payload: "heapguard"}.Write(t, dir, "heapguard")
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(plantedSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		kbd    bool
		accept string // the server's password
		file   bool   // --password-file, else the environment
		extra  []string
	}{
		{name: "password method, wrong password, environment", accept: "other"},
		{name: "keyboard-interactive, wrong password, file", kbd: true, accept: "other", file: true},
		{name: "password method, logged in, sessions refused", accept: plantedSecret, file: true},
		{name: "keyboard-interactive, logged in, sessions refused", kbd: true, accept: plantedSecret},
		{name: "probe only", kbd: true, accept: plantedSecret, extra: []string{"--probe-only"}},
		{name: "status", accept: plantedSecret, file: true, extra: []string{"--status"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			deployEnv(t)
			addr, known := secretServer(t, c.accept, c.kbd)
			args := []string{"deploy", "--mode", "none", "--binary", bin, "--known-hosts", known,
				"--dest", "/vmfs/volumes/datastore1/heapguard", "--connect-timeout", "10s"}
			if c.file {
				args = append(args, "--password-file", pwFile)
			} else {
				t.Setenv(passwordEnv, plantedSecret)
			}
			args = append(append(args, c.extra...), "root@"+addr)
			code, out, stderr := runCLI(t, args...)
			// --probe-only reports what it could not learn and exits 0.
			if code == exitOK && c.extra == nil {
				t.Fatalf("exit 0 against a host that refuses sessions:\n%s%s", out, stderr)
			}
			want := "unable to authenticate"
			if c.accept == plantedSecret {
				want = "no sessions here"
			}
			if !strings.Contains(out+stderr, want) {
				t.Errorf("exit %d, output does not say %q:\n%s%s", code, want, out, stderr)
			}
			noSecret(t, "stdout", out, plantedSecret)
			noSecret(t, "stderr", stderr, plantedSecret)
		})
	}
}

// TestKeyMaterialNeverPrinted: a key file that cannot be used (not a key,
// encrypted with another passphrase, unreadable, refused by the host) is
// named in the error, never shown, and neither is the passphrase tried.
func TestKeyMaterialNeverPrinted(t *testing.T) {
	deployEnv(t)
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	plainPEM := pem.EncodeToMemory(block)
	plain := filepath.Join(dir, "id_plain")
	os.WriteFile(plain, plainPEM, 0o600)
	encBlock, err := ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(plantedSecret))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "id_enc")
	os.WriteFile(enc, pem.EncodeToMemory(encBlock), 0o600)
	// A file that looks like a key and holds the secret in its body.
	bogus := filepath.Join(dir, "id_bogus")
	os.WriteFile(bogus, pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("openssh-key-v1\x00" + plantedSecret)}), 0o600)
	bogusRSA := filepath.Join(dir, "id_bogus_rsa")
	os.WriteFile(bogusRSA, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte(plantedSecret)}), 0o600)
	notPEM := filepath.Join(dir, "id_text")
	os.WriteFile(notPEM, []byte(plantedSecret+"\n"), 0o600)

	// What of the key could leak: its body as stored, and its raw bytes.
	body := base64.StdEncoding.EncodeToString(block.Bytes)
	secrets := []string{plantedSecret, body[40:80], string(key.Seed()), base64.StdEncoding.EncodeToString(key.Seed())}

	// Wrong passphrase: LoadKeyFile's error, then deploy's.
	_, err = deploy.LoadKeyFile(enc, func(string) ([]byte, error) { return []byte(plantedSecret + "-wrong"), nil })
	if err == nil {
		t.Fatal("wrong passphrase accepted")
	}
	noSecret(t, "wrong passphrase", err.Error(), append(secrets, plantedSecret+"-wrong")...)

	addr, known := secretServer(t, "other", false)
	bin := deploytest.ELF{Marker: true, Payload: "heapguard"}.Write(t, dir, "heapguard")
	for _, c := range []struct{ name, key, want string }{
		{"encrypted, no terminal", enc, "encrypted"},
		{"not a key", notPEM, "id_text"},
		{"openssh envelope holding the secret", bogus, "id_bogus"},
		{"rsa envelope holding the secret", bogusRSA, "id_bogus_rsa"},
		{"missing", filepath.Join(dir, "id_missing"), "id_missing"},
		{"a folder", dir, dir},
		{"refused by the host", plain, "unable to authenticate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, "deploy", "--mode", "none", "--binary", bin, "--known-hosts", known,
				"--dest", "/vmfs/volumes/datastore1/heapguard", "-i", c.key, "root@"+addr)
			if code == exitOK || !strings.Contains(out+stderr, c.want) {
				t.Errorf("exit %d, want a failure saying %q:\n%s%s", code, c.want, out, stderr)
			}
			noSecret(t, "stdout", out, secrets...)
			noSecret(t, "stderr", stderr, secrets...)
		})
	}
}

// TestSyslogCredentialsRedacted: --syslog takes no user info; refused, the
// value is quoted without its password, from the command line and from
// --config.
func TestSyslogCredentialsRedacted(t *testing.T) {
	dest := "tcp://admin:" + plantedSecret + "@127.0.0.1:514"
	code, out, stderr := runCLI(t, "check", "--state-dir", t.TempDir(), "--syslog="+dest)
	if code != exitUnknown || !strings.Contains(stderr, "tcp://admin:xxxxx@127.0.0.1:514") {
		t.Errorf("exit %d, stderr %q: want 3 and the address without its password", code, stderr)
	}
	noSecret(t, "flag: stdout", out, plantedSecret)
	noSecret(t, "flag: stderr", stderr, plantedSecret)

	conf := filepath.Join(t.TempDir(), "heapguard.conf")
	if err := os.WriteFile(conf, []byte("syslog "+dest+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCLI(t, "check", "--state-dir", t.TempDir(), "--config", conf)
	if code != exitUnknown || !strings.Contains(stderr, "xxxxx@") {
		t.Errorf("config: exit %d, stderr %q: want 3 and the address without its password", code, stderr)
	}
	noSecret(t, "config: stdout", out, plantedSecret)
	noSecret(t, "config: stderr", stderr, plantedSecret)
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://u:p@h:514":                   "tcp://u:xxxxx@h:514",
		`value "udp://root:a:b@10.0.0.1" x`: `value "udp://root:xxxxx@10.0.0.1" x`,
		"tcp://h:514":                       "tcp://h:514",
		"tcp://user@h:514":                  "tcp://user@h:514",
		"no url: a:b@c":                     "no url: a:b@c",
		"unix:///var/run/log":               "unix:///var/run/log",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
