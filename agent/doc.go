// Package agent is heapguard's driver, the thin loop around the pure
// policy, like raft's node around its core. Each poll it reads the log
// (collector, collector/follow), samples the heaps (heap), and asks the
// host who owns a flapping port and what the guards allow (remediate).
// It then calls policy.Decide, carries the plan out through
// remediate.Apply and tells the policy what started (policy.Advance). It
// keeps the state between polls and runs (run and check).
//
// It builds no host command itself: those are remediate's and heap's.
package agent
