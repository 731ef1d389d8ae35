package remediate

import (
	"fmt"
	"time"
)

// PortLog is what the vmkernel log says of a flapping port besides its
// flaps (collector.PortStatus): whether its newest line is a disable, and
// whether its MAC came up on another port since its newest enable.
type PortLog struct {
	// Down: the port's newest line is "disabled port" at DownSince, with
	// no "enabled port" at or after it.
	Down      bool      `json:"down,omitempty"`
	DownSince time.Time `json:"down_since,omitzero"`
	// MovedTo enabled the port's MAC at MovedAt, after the port's newest
	// enable; zero MovedAt when no other port did.
	MovedTo uint32    `json:"moved_to,omitempty"`
	MovedAt time.Time `json:"moved_at,omitzero"`
}

// staleClaim withdraws the VM a flapping port was given by its MAC alone
// (a host without a port list) when the log says the port is no longer
// that MAC's: the MAC came up on another port since the port's newest
// enable, or the port went down and did not come back. The claimant's
// .vmx declares the MAC, but its own port is another one, or unknown: it
// may be the MAC's new holder while the VM whose port flapped is
// unregistered or powered off (the flaps stay in the window for minutes).
// Not acting is the safe side: if the port does come back, the next poll
// sees it up.
func staleClaim(o *PortOwner, seen PortLog) {
	if o.Owner == nil {
		return
	}
	c := *o.Owner
	switch {
	case !seen.MovedAt.IsZero():
		o.Owner = nil
		o.Why = fmt.Sprintf("MAC %s moved to port %s (enabled there at %s, after port %s's last flap): the VM whose port flapped is gone or unknown, and %s, which declares the MAC, is not known to have flapped; this host has no port list to tell",
			o.MAC, portText(seen.MovedTo), seen.MovedAt.UTC().Format(time.RFC3339), portText(o.Port), c)
	case seen.Down:
		o.Owner = nil
		o.Why = fmt.Sprintf("port %s was disabled at %s and not enabled since (its VM powered off, unregistered or moved, or this poll read between a flap's two lines: the next poll tells): the VM whose port flapped is gone or unknown, and %s, which declares MAC %s, is not known to have flapped; this host has no port list to tell",
			portText(o.Port), seen.DownSince.UTC().Format(time.RFC3339), c, o.MAC)
	}
}
