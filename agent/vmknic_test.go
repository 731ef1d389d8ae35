package agent

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// vmknicHost is the seed incident on a host without net-stats where vmk1
// flaps and mon-01's .vmx declares vmk1's MAC on a present NIC: the MAC
// alone would blame mon-01.
func vmknicHost(t *testing.T) *esxsim.Host {
	t.Helper()
	h := newSim(t, "seed-incident")
	if err := os.Remove(h.Bin("net-stats")); err != nil {
		t.Fatal(err)
	}
	h.Advance(108 * time.Minute)
	const vmk1 = "00:50:56:6a:3c:91"
	h.AddFlap(esxsim.FlapSpec{Port: 0x4000002, Period: esxsim.Duration(3 * time.Second)})
	h.EditVMX("mon-01", func(text string) string {
		return text + "ethernet1.present = \"TRUE\"\nethernet1.addressType = \"static\"\nethernet1.address = \"" + vmk1 + "\"\n"
	})
	return h
}

// TestVmknicFlapsNoNetStats: without a port list, esxcfg-vmknic -l says
// vmk1 holds the MAC: its port is the host's, mon-01 is never powered off
// and the alert names vmk1; the DSVA appliances still are.
func TestVmknicFlapsNoNetStats(t *testing.T) {
	t.Parallel()
	h := vmknicHost(t)
	r := watch(t, h, 5*time.Minute, func(o *Options) {
		o.Policy.PowerOffAllow = []string{"DSVA*", "mon-01"}
		o.Guards.MaxPowerOffs = 10 // the budget must not be what spares mon-01
	})
	wantPowerOps(t, h, r.before, []string{"DSVA01", "DSVA03", "DSVA04"}, []string{"mon-01"})
	if !journalAlertNames(t, r, "0x4000002", "VMkernel NIC vmk1", `"mon-01"`) {
		t.Error("no alert says port 0x4000002 is vmk1's and names mon-01's claim")
	}
}

// TestVmknicListFailsNoNetStats: while esxcfg-vmknic fails, the vmknics'
// MACs are unknown and no VM is powered off by MAC alone, not even the
// DSVA appliances; the inventory, incomplete, is asked again within
// inventoryRetry (not inventoryTTL), and once esxcfg-vmknic answers the
// appliances are powered off, and mon-01 never is.
func TestVmknicListFailsNoNetStats(t *testing.T) {
	t.Parallel()
	h := vmknicHost(t)
	h.AddFault(esxsim.Fault{Command: "esxcfg-vmknic", ExitCode: 1, Stderr: "Error: Unable to get vmknic list\n", Times: 1})
	r := watch(t, h, inventoryTTL-time.Minute, func(o *Options) {
		o.Policy.PowerOffAllow = []string{"DSVA*", "mon-01"}
		o.Guards.MaxPowerOffs = 10
	})
	wantPowerOps(t, h, r.before, []string{"DSVA01", "DSVA03", "DSVA04"}, []string{"mon-01"})
	unknown, acted := -1, -1
	for i, e := range r.journal(t) {
		switch {
		case unknown < 0 && e.Action == policy.ActAlert && strings.Contains(e.Reason, "VMkernel NICs are unknown (esxcfg-vmknic -l"):
			unknown = i
		case acted < 0 && e.Action == policy.ActPowerOff && e.Result == remediate.ResultStarted:
			acted = i
		}
	}
	if unknown < 0 || acted < unknown {
		t.Errorf("journal: first alert on unknown vmknics at entry %d, first power-off at %d: want the alert, then the power-offs", unknown, acted)
	}
}
