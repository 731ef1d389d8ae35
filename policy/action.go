package policy

// ActionKind names one kind of step a Plan can hold.
type ActionKind string

const (
	// ActAlert says something and changes nothing (a heap low with no
	// flapping port to blame, a port flapping with no leak, …).
	ActAlert ActionKind = "alert"
	// ActPowerOff powers a VM off: graceful shutdown first, hard power-off
	// after the shutdown timeout or at once when VMware Tools is not running.
	ActPowerOff ActionKind = "power_off"
	// ActRestartAgent restarts a management agent (Target "vpxa" or
	// "hostd") through its init script and checks that it runs.
	ActRestartAgent ActionKind = "restart_agent"
	// ActVerify checks that the host recovered: the agent runs and the
	// heap has stopped falling.
	ActVerify ActionKind = "verify"
)

// HeapFigures are the numbers behind a decision, kept with every action
// and journal entry so each step can be explained afterwards.
type HeapFigures struct {
	Name             string  `json:"name"`
	PercentFreeOfMax float64 `json:"percent_free_of_max"`
	MaxBytes         int64   `json:"max_bytes,omitempty"`
	AllocatedBytes   int64   `json:"allocated_bytes,omitempty"`
	// BytesPerSecond is the fitted trend of allocated bytes (positive: leaking).
	BytesPerSecond float64 `json:"bytes_per_second,omitempty"`
	// SecondsToExhaustion is the predicted time to maximum; 0 when no
	// prediction (flat or recovering trend, too few samples).
	SecondsToExhaustion float64 `json:"seconds_to_exhaustion,omitempty"`
}

// Action is one step of a Plan, with the reason for it in words and numbers.
type Action struct {
	Kind ActionKind `json:"action"`
	// Target is the VM display name, the agent name ("vpxa") or the heap name.
	Target string `json:"target"`
	// VMID is the vim-cmd vmid for ActPowerOff.
	VMID string `json:"vmid,omitempty"`
	// Port and MAC are the flapping port (log form, "0x3000007") and MAC
	// that made this VM a candidate.
	Port string `json:"port,omitempty"`
	MAC  string `json:"mac,omitempty"`
	// Reason explains the step in words and numbers.
	Reason string `json:"reason"`
	// Skipped, when not empty, says why the step is listed but must not be
	// carried out (not in the allow-list, budget spent, breaker open, …).
	Skipped string       `json:"skipped,omitempty"`
	Heap    *HeapFigures `json:"heap,omitempty"`
	// AgentOnly: a verification that checks the agent alone (the heaps
	// could not be read when the plan was made).
	AgentOnly bool `json:"agent_only,omitempty"`
}
