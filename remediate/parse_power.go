package remediate

import (
	"fmt"
	"io"
	"strings"
)

// PowerState is a VM's power state, as `vim-cmd vmsvc/power.getstate`
// prints it.
type PowerState string

// Only "Powered off" was seen on a host (testdata/vim-cmd-power-getstate.txt);
// "Powered on" and "Suspended" follow the same wording of the vSphere
// API's VirtualMachinePowerState and are unverified.
const (
	PoweredOn  PowerState = "Powered on"
	PoweredOff PowerState = "Powered off"
	Suspended  PowerState = "Suspended"
)

// ParsePowerState parses `vim-cmd vmsvc/power.getstate ID`:
//
//	Retrieved runtime info
//	Powered off
//
// The state line is matched without regard to case or surrounding blanks;
// output without one is an error wrapping ErrBadOutput that quotes it.
func ParsePowerState(r io.Reader) (PowerState, error) {
	var (
		st   PowerState
		seen []string
	)
	err := scanLines(r, func(line string) {
		t := strings.TrimSpace(line)
		if st != "" || t == "" {
			return
		}
		for _, s := range []PowerState{PoweredOn, PoweredOff, Suspended} {
			if strings.EqualFold(t, string(s)) {
				st = s
				return
			}
		}
		if len(seen) < 3 {
			seen = append(seen, t)
		}
	})
	if err != nil {
		return "", fmt.Errorf("parse power state: %w", err)
	}
	if st == "" {
		return "", fmt.Errorf("parse power state: no state in %s: %w", quoteClip(strings.Join(seen, " / ")), ErrBadOutput)
	}
	return st, nil
}
