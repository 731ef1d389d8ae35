package main

// sysmonEdit makes the runtime's sysmon back off after 2 idle cycles of
// 20 us instead of 50. Not an ESXi fallback but the daemon's cost: sysmon
// wakes at the first system call after each idle spell (every poll, every
// host command's wait) and then slept 20 us at a time for 1 ms, about a
// sixth of `heapguard run`'s CPU per poll (perf). It then doubles its
// sleep up to the same 10 ms cap as the stock runtime reaches after 1 ms:
// retaking a P from a blocking system call and preempting a goroutine
// past 10 ms keep their stock bounds once sysmon has backed off; only the
// first millisecond after idling is watched less closely.
var sysmonEdit = edit{
	file: "runtime/proc.go",
	old:  "\t\t} else if idle > 50 { // start doubling the sleep after 1ms...\n",
	new:  "\t\t} else if idle > 2 { // heapguard (tools/rtpatch/sysmon.go): start doubling after 40us\n",
}

func init() { edits = append(edits, sysmonEdit) }
