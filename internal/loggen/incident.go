// Package loggen writes synthetic vmkernel logs, deterministic from a seed:
// the seed incident's /var/log/messages and a large 5.x log for benchmarks.
// It only writes to an io.Writer.
package loggen

import (
	"bufio"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// flapper is one flapping port of the incident, with the worlds and the
// in-round offset seen in the incident's excerpt.
type flapper struct {
	port   string
	mac    string
	worlds [2]int
	offset float64 // seconds after the round's start
	late   int     // rounds it joined late
}

// The incident (seed/esxi-heap-depletion-incident.md): three DSVA VMs'
// ports flap about every 3.015 s in the order 3, 5, 7 within a round; the
// DSVA01 port (0x3000005) began one round after the others. Each enable
// leaks two 4364-byte buffers (the Heap_Align size) from netGPHeap until
// the heap reaches its maximum; the next allocation fails and vpxa dumps.
var incidentPorts = []flapper{
	{port: "0x3000003", mac: "00:50:56:84:5a:b1", worlds: [2]int{45460, 45459}, offset: 0},
	{port: "0x3000005", mac: "00:50:56:84:5a:ba", worlds: [2]int{202148, 202147}, offset: 0.181, late: 1},
	{port: "0x3000007", mac: "00:50:56:84:5a:b4", worlds: [2]int{202157, 202156}, offset: 0.315},
}

const (
	incidentPeriod = 3.015 // seconds between two cycles of one port
	// netGPHeap figures: the maximum size and the bytes still "available"
	// when it failed come from the incident's vsish stats; the allocated size
	// when flapping began is the scenario's choice.
	heapMax          = 67109968
	heapAvailAtFail  = 3344800
	heapStartAlloc   = 21408184
	leakPerCycle     = 2 * 4364
	crashAfterLastUp = 2.004 // seconds from the last enable to the failed allocation
)

// The crash's wall time and uptime stamp, and its lines as in the incident
// (offset from the failed allocation in seconds, cpu, world, message).
var (
	crashWall   = time.Date(0, time.July, 26, 1, 26, 46, 0, time.UTC)
	crashUptime = 7*24*time.Hour + 21*time.Hour + 6*time.Minute + 31191*time.Millisecond
	crashLines  = []struct {
		after      float64
		cpu, world int
		msg        string
	}{
		{0, 3, 33421, "WARNING: Heap: 2218: Heap netGPHeap already at its maximumSize. Cannot expand."},
		{0, 3, 33421, "WARNING: Heap: 2481: Heap_Align(netGPHeap, 4364/4364 bytes, 8 align) failed. caller: 0x41801c90bb4e"},
		{0.004, 2, 33595, "WARNING: Heap: 2218: Heap netGPHeap already at its maximumSize. Cannot expand."},
		{0.004, 2, 33595, "WARNING: Heap: 2481: Heap_Align(netGPHeap, 4364/4364 bytes, 8 align) failed. caller: 0x41801c90bb4e"},
		{0.008, 3, 14258, "User: 2432: wantCoreDump : vpxa -enabled : 1"},
		{0.192, 11, 14258, "UserDump: 1485: Dumping cartel 14235 (from world 14258) to file /var/core/vpxa-zdump.000 ..."},
	}
)

type incidentLine struct {
	at         float64 // seconds since the first flap
	cpu, world int
	msg        string
}

// Incident writes the incident's /var/log/messages (ESXi 4.x syslog format):
// the flapping of the three ports until netGPHeap runs out, then the heap
// and dump lines. The number of cycles follows from the heap figures, so
// `grep 'enabled port' | awk '{print $13}' | sort | uniq -c` gives the
// incident's 1618 / 1618 / 1617.
func Incident(w io.Writer, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x1c1de47))
	var lines []incidentLine
	allocated := heapStartAlloc
	last := 0.0
	for round := 0; heapMax-allocated > heapAvailAtFail; round++ {
		for _, p := range incidentPorts {
			if round < p.late || heapMax-allocated <= heapAvailAtFail {
				continue
			}
			// Jitter around the schedule, not accumulated: the order within a
			// round stays as in the incident.
			t := float64(round)*incidentPeriod + p.offset + r.Float64()*0.012
			cpu, world := r.IntN(24), p.worlds[r.IntN(2)]
			lines = append(lines,
				incidentLine{t, cpu, world, "NetPort: 1165: disabled port " + p.port},
				incidentLine{t + 0.003, cpu, world, "NetPort: 982: enabled port " + p.port + " with mac " + p.mac})
			allocated += leakPerCycle
			last = t + 0.003
		}
	}
	crash := last + crashAfterLastUp
	for _, c := range crashLines {
		lines = append(lines, incidentLine{crash + c.after, c.cpu, c.world, c.msg})
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var b []byte
	for _, l := range lines {
		// Map the simulation's seconds onto the incident's clocks: the crash
		// was at uptime 7:21:06:31.191, written by syslog at 01:26:46.
		fromCrash := time.Duration(math.Round((l.at-crash)*1000)) * time.Millisecond
		up := crashUptime + fromCrash
		wall := crashWall.Add(crashUptime%time.Second + fromCrash)
		b = appendSyslog(b[:0], wall, up)
		b = append(b, "cpu"...)
		b = strconv.AppendInt(b, int64(l.cpu), 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(l.world), 10)
		b = append(b, ')')
		b = append(b, l.msg...)
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// appendSyslog writes "Jul 26 01:26:46 vmkernel: 7:21:06:31.191 ".
func appendSyslog(b []byte, wall time.Time, up time.Duration) []byte {
	b = wall.AppendFormat(b, "Jan _2 15:04:05")
	b = append(b, " vmkernel: "...)
	ms := up.Milliseconds()
	b = strconv.AppendInt(b, ms/86400000, 10)
	b = append(b, ':')
	b = append2(b, ms/3600000%24)
	b = append(b, ':')
	b = append2(b, ms/60000%60)
	b = append(b, ':')
	b = append2(b, ms/1000%60)
	b = append(b, '.')
	b = append(b, byte('0'+ms/100%10), byte('0'+ms/10%10), byte('0'+ms%10))
	return append(b, ' ')
}

func append2(b []byte, v int64) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
