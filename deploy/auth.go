package deploy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Auth is how deploy proves who it is: public keys (from an SSH agent and
// key files, tried in that order), then keyboard-interactive and password
// answered with one password. ESXi 5.1 to 6.5 refuse the "password"
// method and ask the same question through keyboard-interactive.
type Auth struct {
	Agent   agent.Agent // nil: none
	Signers []ssh.Signer
	// Password gives the password when the host first asks for one; nil:
	// no password methods. It is called at most once per Auth.
	Password func() (string, error)

	once     sync.Once
	password string
	err      error
}

// DefaultKeyFiles are the key files tried when none is named, in ~/.ssh.
var DefaultKeyFiles = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// getPassword asks Password once; pause stops the connection's clock
// while it does (a person may be typing) and returns what restarts it.
// Connections made at once all wait for that one prompt, each with its
// clock stopped.
func (a *Auth) getPassword(pause func() (resume func())) (string, error) {
	resume := pause()
	defer resume()
	a.once.Do(func() { a.password, a.err = a.Password() })
	return a.password, a.err
}

// methods are the ways to log in, in order, for one connection.
func (a *Auth) methods(pause func() (resume func())) []ssh.AuthMethod {
	var m []ssh.AuthMethod
	if a.Agent != nil || len(a.Signers) > 0 {
		m = append(m, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			var signers []ssh.Signer
			if a.Agent != nil {
				// An agent that fails leaves the key files.
				if s, err := a.Agent.Signers(); err == nil {
					signers = append(signers, s...)
				}
			}
			return append(signers, a.Signers...), nil
		}))
	}
	if a.Password != nil {
		m = append(m, ssh.KeyboardInteractive(a.answer(pause)),
			ssh.PasswordCallback(func() (string, error) { return a.getPassword(pause) }))
	}
	return m
}

// answer answers the host's hidden questions with the password, once per
// connection: a second one means it was refused, and sending it again
// would only count more failures against the account.
func (a *Auth) answer(pause func() (resume func())) ssh.KeyboardInteractiveChallenge {
	asked := false
	return func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		answers := make([]string, len(questions))
		for i, q := range questions {
			if echos[i] {
				return nil, fmt.Errorf("keyboard-interactive: the host asks %q, which is not a password", q)
			}
			if asked {
				return nil, errors.New("keyboard-interactive: the host asked for the password again: refused")
			}
			asked = true
			p, err := a.getPassword(pause)
			if err != nil {
				return nil, err
			}
			answers[i] = p
		}
		return answers, nil
	}
}

// DialAgent connects to the SSH agent at socket (SSH_AUTH_SOCK).
func DialAgent(socket string) (agent.ExtendedAgent, io.Closer, error) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh agent: %w", err)
	}
	return agent.NewClient(conn), conn, nil
}

// LoadKeyFile reads a private key; for an encrypted one it calls
// passphrase (nil: the key is refused with a clear error).
func LoadKeyFile(path string, passphrase func(path string) ([]byte, error)) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == nil {
			return nil, fmt.Errorf("key %s is encrypted and no terminal can ask its passphrase (load it into ssh-agent)", path)
		}
		pass, perr := passphrase(path)
		if perr != nil {
			return nil, fmt.Errorf("passphrase of %s: %w", path, perr)
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(pem, pass)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return s, nil
}

// DefaultKeys loads those of DefaultKeyFiles in dir that exist. An
// encrypted one is asked for only when there is no agent (which likely
// holds it); otherwise, or when it cannot be read, it is skipped with a
// note to warn.
func DefaultKeys(dir string, haveAgent bool, passphrase func(string) ([]byte, error), warn io.Writer) []ssh.Signer {
	var signers []ssh.Signer
	for _, name := range DefaultKeyFiles {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		ask := passphrase
		if haveAgent {
			ask = nil
		}
		s, err := LoadKeyFile(p, ask)
		if err != nil {
			if !haveAgent {
				fmt.Fprintf(warn, "heapguard deploy: skipped %v\n", err)
			}
			continue
		}
		signers = append(signers, s)
	}
	return signers
}
