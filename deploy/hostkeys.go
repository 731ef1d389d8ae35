package deploy

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrUnknownHost: known_hosts holds no key for the host (and --accept-new
// was not given). ErrHostKeyChanged: it holds another key; always refused.
var (
	ErrUnknownHost    = errors.New("unknown host key")
	ErrHostKeyChanged = errors.New("host key changed")
)

// KnownHosts checks host keys against one known_hosts file, strictly.
type KnownHosts struct {
	File string
	// AcceptNew appends the key of a host the file does not know (in
	// plain text, like ssh -o StrictHostKeyChecking=accept-new). A key
	// that differs from a known one is refused all the same.
	AcceptNew bool
	// Log gets a line for each key appended; nil: none.
	Log io.Writer

	mu sync.Mutex // serialises appends
}

// probeKey is a key no known_hosts holds: checking it against the file
// lists the keys known for a host in the KeyError it returns.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err) // a fixed, valid key
	}
	return k
}()

// load reads the file afresh (keys appended for an earlier host count); a
// missing file is an empty one.
func (k *KnownHosts) load() (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(k.File)
	if errors.Is(err, os.ErrNotExist) {
		return knownhosts.New()
	}
	if err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	return cb, nil
}

// knownKeys are the keys the file holds for the host at hostport, reached
// at remote.
func knownKeys(db ssh.HostKeyCallback, hostport string, remote net.Addr) ([]knownhosts.KnownKey, error) {
	err := db(hostport, remote, probeKey)
	var ke *knownhosts.KeyError
	switch {
	case err == nil:
		return nil, errors.New("known hosts accepted a probe key: a wildcard or certificate entry?")
	case errors.As(err, &ke):
		return ke.Want, nil
	}
	return nil, err
}

// hostKeyAlgorithms lists what to ask of the server so that it shows a key
// of a type known_hosts holds for it; nil when none is known (any type).
// Without this the server may show another type of key it has and the
// check fails though a valid key is known (golang/go#49631).
func hostKeyAlgorithms(known []knownhosts.KnownKey, legacy bool) []string {
	var algos []string
	for _, k := range known {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
			if legacy {
				algos = append(algos, ssh.KeyAlgoRSA)
			}
		case ssh.KeyAlgoDSA:
			if legacy {
				algos = append(algos, t)
			}
		default:
			algos = append(algos, t)
		}
	}
	slices.Sort(algos)
	return slices.Compact(algos)
}

// callback checks the key the server shows: known and equal passes, known
// and different is ErrHostKeyChanged, unknown is ErrUnknownHost or, with
// AcceptNew, appended.
func (k *KnownHosts) callback(db ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(hostport string, remote net.Addr, key ssh.PublicKey) error {
		err := db(hostport, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case !errors.As(err, &ke):
			return fmt.Errorf("check host key of %s: %w", hostport, err)
		case len(ke.Want) > 0:
			return changedKeyError(k.File, hostport, key, ke.Want)
		case k.AcceptNew:
			return k.add(hostport, key)
		}
		return fmt.Errorf("%w: %s shows %s key %s, which %s does not hold; compare it with the host's own, read on its console (docs/deploy.md), then rerun with --accept-new to add it",
			ErrUnknownHost, hostport, key.Type(), ssh.FingerprintSHA256(key), k.File)
	}
}

func changedKeyError(file, hostport string, key ssh.PublicKey, want []knownhosts.KnownKey) error {
	var known []string
	for _, w := range want {
		known = append(known, fmt.Sprintf("%s:%d (%s %s)", w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)))
	}
	return fmt.Errorf("%w: %s shows %s key %s, but %s holds another key for it: refused, even with --accept-new (someone may be in the middle; if the host was reinstalled, check its new key on its console and remove the old line)",
		ErrHostKeyChanged, hostport, key.Type(), ssh.FingerprintSHA256(key), strings.Join(known, ", "))
}

// add appends a plain (not hashed) line for the host.
func (k *KnownHosts) add(hostport string, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(k.File), 0o700); err != nil {
		return fmt.Errorf("add host key: %w", err)
	}
	f, err := os.OpenFile(k.File, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("add host key: %w", err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostport)}, key) + "\n"
	// A last line without its newline would be glued to ours.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("add host key to %s: %w", k.File, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("add host key to %s: %w", k.File, err)
	}
	if k.Log != nil {
		fmt.Fprintf(k.Log, "heapguard deploy: added %s key %s of %s to %s (plain host name, not hashed)\n",
			key.Type(), ssh.FingerprintSHA256(key), knownhosts.Normalize(hostport), k.File)
	}
	return nil
}
