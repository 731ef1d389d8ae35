// Package proptest holds heapguard's property tests over randomized
// incidents on esxsim and the soak run (make soak); it has no code of its
// own outside the tests and must not be imported.
package proptest
