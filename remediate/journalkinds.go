package remediate

import "github.com/heapguard/heapguard/policy"

// JournalActions are the action names a journal entry carries: the
// decision that opens a plan, each kind of step, and the daemon's stop.
var JournalActions = []policy.ActionKind{
	ActDecide, policy.ActAlert, policy.ActPowerOff, policy.ActRestartAgent, policy.ActVerify, ActStop,
}
