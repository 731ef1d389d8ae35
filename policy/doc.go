// Package policy decides. It is pure, like etcd-io/raft's core: Decide
// reads no clock, does no I/O and draws no random numbers. Observations
// (heaps, flapping ports and who owns them, vpxa, what the guards allow)
// and the State of earlier polls come in; a Plan (ordered actions, each
// with its reason) and the next State come out. What was carried out goes
// back in through Advance, and a restart resumes from the journal through
// Resume: the driver never edits the State itself.
package policy
