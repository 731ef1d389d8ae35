package deploy

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func fuzzHostKey(f *testing.F, seed byte) ssh.PublicKey {
	f.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(s).Public())
	if err != nil {
		f.Fatal(err)
	}
	return k
}

// FuzzKnownHosts reads any known_hosts file and checks one host's key
// against it. Whatever the file says, the check never accepts a key the
// file does not hold; it only writes with --accept-new, and then only
// appends a line that makes the key known; a refusal leaves the file as
// it was.
func FuzzKnownHosts(f *testing.F) {
	key, other := fuzzHostKey(f, 1), fuzzHostKey(f, 2)
	const host = "esx01.example"
	auth := func(k ssh.PublicKey) string { return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n") }
	for _, s := range []string{
		"",
		knownhosts.Line([]string{host}, key) + "\n",
		knownhosts.Line([]string{host}, other) + "\n",
		knownhosts.Line([]string{knownhosts.HashHostname(host)}, key) + "\n",
		knownhosts.Line([]string{"[" + host + "]:2222", "192.0.2.1"}, key) + "\n",
		"@revoked " + host + " " + auth(key) + "\n",
		"@cert-authority *.example " + auth(other) + "\n",
		"*.example,!" + host + " " + auth(key) + "\n",
		"# comment\n\n" + host + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n",
		host + " " + auth(other), // no newline at the end
		"other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	wire := base64.StdEncoding.EncodeToString(key.Marshal())
	p := filepath.Join(f.TempDir(), "known_hosts")
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}
	f.Fuzz(func(t *testing.T, content string, acceptNew bool) {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		k := &KnownHosts{File: p, AcceptNew: acceptNew}
		db, err := k.load()
		if err != nil {
			return // a file knownhosts cannot read: a clear error
		}
		known, kerr := knownKeys(db, host+":22", remote)
		if kerr == nil {
			hostKeyAlgorithms(known, true)
		}
		err = k.callback(db)(host+":22", remote, key)
		b, rerr := os.ReadFile(p)
		if rerr != nil {
			t.Fatal(rerr)
		}
		after := string(b)
		switch {
		case err != nil:
			if after != content {
				t.Fatalf("refused (%v) but the file changed:\n%q\n->\n%q", err, content, after)
			}
			if errors.Is(err, ErrUnknownHost) && acceptNew {
				t.Fatalf("unknown host refused with --accept-new: %v", err)
			}
		case after == content:
			if !strings.Contains(content, wire) {
				t.Fatalf("accepted a key the file does not hold:\n%q", content)
			}
		default:
			if !acceptNew {
				t.Fatalf("file written without --accept-new:\n%q\n->\n%q", content, after)
			}
			if kerr == nil && len(known) > 0 {
				t.Fatalf("a key appended for a host the file knows by another key:\n%q\n->\n%q", content, after)
			}
			if !strings.HasPrefix(after, content) {
				t.Fatalf("not an append:\n%q\n->\n%q", content, after)
			}
			db2, err := k.load()
			if err != nil {
				t.Fatalf("the appended file does not load: %v\n%q", err, after)
			}
			if err := db2(host+":22", remote, key); err != nil {
				t.Fatalf("the appended key is not known: %v\n%q", err, after)
			}
		}
	})
}
