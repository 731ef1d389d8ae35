// Package deploy puts heapguard on ESXi hosts over SSH: it checks the
// binary is one ESXi can run, connects with golang.org/x/crypto/ssh
// (strict known_hosts, agent, key files, keyboard-interactive), streams
// the binary over an exec session, verifies it by reading it back, and
// renames it into place.
//
// It must not run on the ESXi host itself, and it builds remote shell
// commands only from fixed text and quoted paths (quote.go).
package deploy
