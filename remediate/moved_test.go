package remediate

import (
	"strings"
	"testing"
	"time"
)

// TestOwnerOfMovedMAC: on a host without a port list, DSVA03's port
// 0x3000007 flapped, DSVA03 was unregistered (its port's last line
// "disabled port 0x3000007") and its MAC given to DSVA02, powered on,
// whose port never flapped. The flaps stay in the
// 5-minute window, and DSVA02 is now the MAC's only live claimant: by the
// .vmx alone it would be powered off.
func TestOwnerOfMovedMAC(t *testing.T) {
	downAt := time.Date(2014, 6, 10, 6, 2, 1, 0, time.UTC)
	movedAt := downAt.Add(2 * time.Second)
	moved := func(h *ownerHost) {
		h.ports = nil
		h.rows = h.rows[:1] // DSVA03 unregistered
		h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
	}
	for _, tc := range []struct {
		name      string
		setup     func(h *ownerHost)
		seen      PortLog
		owner     string
		ambiguous bool
		why       []string
	}{
		// What the join gives without the log's word: the rule below is
		// all that stands between the new holder and a power-off.
		{name: "port up, MAC on no other port", setup: moved, owner: "2"},
		{name: "MAC enabled on another port since", setup: moved,
			seen: PortLog{Down: true, DownSince: downAt, MovedTo: 0x3000009, MovedAt: movedAt},
			why:  []string{"MAC 00:50:56:84:5a:b4 moved to port 0x3000009 (enabled there at 2014-06-10T06:02:03Z, after port 0x3000007's last flap)", "the VM whose port flapped is gone or unknown", `"DSVA02" (vmid 2, ethernet2, powered on)`}},
		{name: "MAC moved while the port is still up", setup: moved,
			seen: PortLog{MovedTo: 0x3000009, MovedAt: movedAt},
			why:  []string{"moved to port 0x3000009"}},
		// esxsim changes the new holder's MAC without a line: the old
		// port's disable is all the log shows.
		{name: "port disabled, not enabled since", setup: moved,
			seen: PortLog{Down: true, DownSince: downAt},
			why:  []string{"port 0x3000007 was disabled at 2014-06-10T06:02:01Z and not enabled since", "the VM whose port flapped is gone or unknown", `"DSVA02" (vmid 2, ethernet2, powered on), which declares MAC 00:50:56:84:5a:b4, is not known to have flapped`}},
		// An ambiguous MAC stays reported as ambiguous, naming every
		// claimant.
		{name: "two live claimants, port down", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
		}, seen: PortLog{Down: true, DownSince: downAt}, ambiguous: true, why: []string{"2 VMs use MAC"}},
		// A port list read this poll outranks the log's last line.
		{name: "port list names the live client", seen: PortLog{Down: true, DownSince: downAt, MovedTo: 0x3000009, MovedAt: movedAt}, owner: "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newOwnerHost()
			if tc.setup != nil {
				tc.setup(h)
			}
			h.seen = tc.seen
			o := h.owner(t)
			owner := ""
			if o.Owner != nil {
				owner = o.Owner.VMID
			}
			if owner != tc.owner || o.Off != nil || o.Ambiguous != tc.ambiguous {
				t.Errorf("owner %q off %v ambiguous %v, want %q, none, %v (why %q)", owner, o.Off, o.Ambiguous, tc.owner, tc.ambiguous, o.Why)
			}
			for _, w := range tc.why {
				if !strings.Contains(o.Why, w) {
					t.Errorf("why %q\nwant it to hold %q", o.Why, w)
				}
			}
		})
	}
}
