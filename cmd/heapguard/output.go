package main

import (
	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// planOutput is the JSON object `check --json` prints and `run --json`
// prints for each poll it reports (one per line): the plan, what became of
// each live step, and the Nagios line. docs/json.md documents it.
type planOutput struct {
	Plan     policy.Plan     `json:"plan"`
	Outcomes []outcomeOutput `json:"outcomes"`
	Nagios   string          `json:"nagios"`
}

// outcomeOutput is one step carried out (or refused), named as the
// journal names it.
type outcomeOutput struct {
	Action    policy.ActionKind `json:"action"`
	Target    string            `json:"target"`
	VMID      string            `json:"vmid,omitempty"`
	Result    string            `json:"result"`
	Error     string            `json:"error,omitempty"`
	Output    string            `json:"output,omitempty"`
	ElapsedMS int64             `json:"elapsed_ms"`
	Mutated   bool              `json:"mutated"`
}

func newPlanOutput(res agent.Result, nagios string) planOutput {
	out := planOutput{Plan: res.Plan, Outcomes: []outcomeOutput{}, Nagios: nagios}
	for _, o := range res.Outcomes {
		out.Outcomes = append(out.Outcomes, outcomeOf(o))
	}
	return out
}

func outcomeOf(o remediate.Outcome) outcomeOutput {
	return outcomeOutput{
		Action: o.Action.Kind, Target: o.Action.Target, VMID: o.Action.VMID,
		Result: o.Result, Error: o.Err, Output: o.Output,
		ElapsedMS: o.Elapsed.Milliseconds(), Mutated: o.Mutated,
	}
}
