package policy

import "testing"

// TestAllowListAnchoredAndCaseInsensitive: an allow-list glob matches the
// whole VM name, in any case, and nothing that merely contains it.
func TestAllowListAnchoredAndCaseInsensitive(t *testing.T) {
	cfg := Config{PowerOffAllow: []string{"DSVA*", "web-0?", "[ab]pp 1"}}
	for name, want := range map[string]bool{
		"DSVA01": true, "dsva01": true, "DsVa": true, "web-01": true, "WEB-09": true, "app 1": true, "BPP 1": true,
		"xDSVA01": false, "prod-DSVA01": false, "web-011": false, "web-0": false, "my web-01": false,
		"cpp 1": false, "app 12": false, "": false, "DSV": false,
	} {
		if got := cfg.allowed(name); got != want {
			t.Errorf("allowed(%q) with %q = %v, want %v", name, cfg.PowerOffAllow, got, want)
		}
	}
	if (Config{}).allowed("DSVA01") {
		t.Error("an empty allow-list allows a VM")
	}
	// A bad glob matches nothing, even a name equal to it.
	if (Config{PowerOffAllow: []string{"[DSVA"}}).allowed("[DSVA") {
		t.Error("a bad glob allows a VM")
	}
}
