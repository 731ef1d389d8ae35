package remediate

import (
	"time"

	"github.com/heapguard/heapguard/policy"
)

// Result values of an Outcome and a journal entry.
const (
	ResultStarted = "started"
	ResultOK      = "ok"
	ResultFailed  = "failed"
	ResultSkipped = "skipped"
	ResultDryRun  = "dry_run"
)

// Outcome is what carrying out one Action did.
type Outcome struct {
	Action  policy.Action `json:"-"`
	Result  string        `json:"result"`
	Err     string        `json:"error,omitempty"`
	Output  string        `json:"output,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns,omitempty"`
	// Mutated: a command that changes the host was run (a shutdown,
	// power-off, restart, stop or start), whether or not it worked. A
	// failed step that ran none changed nothing and costs no budget.
	Mutated bool `json:"mutated,omitempty"`
}

// Ran counts the outcomes whose step ran (was not skipped).
func Ran(outs []Outcome) int {
	n := 0
	for _, o := range outs {
		if o.Result != ResultSkipped {
			n++
		}
	}
	return n
}
