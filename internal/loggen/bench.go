package loggen

import (
	"bufio"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// BenchOptions shape the benchmark log. Zero fields take the defaults.
type BenchOptions struct {
	Seed uint64
	// Start is the first line's time (default 2017-09-30T00:00:00Z).
	Start time.Time
	// Ports flapping all along (default 6), every ~3 s.
	Ports int
	// NoiseGap is the mean time between two noise lines (default 20 ms, so
	// about 1 line in 13.5 is a NetPort or Uplink line).
	NoiseGap time.Duration
	// EventRatio, when in (0, 1), sets NoiseGap so that this share of the
	// lines are port lines: 0.1 is the incident's density at its peak.
	EventRatio float64
}

// Bench writes n lines of 5.1–7.x vmkernel.log (ISO UTC stamps): noise in
// the shapes of the real samples with varying values, plus flapping ports
// (a disabled/enabled pair every ~3 s per port, under NetPort: on some ports
// and Uplink: on others, with different source-line numbers), and the heap
// and dump lines of a crash at the end. 8 M lines make about 1 GB.
func Bench(w io.Writer, n int, opt BenchOptions) error {
	if opt.Start.IsZero() {
		opt.Start = time.Date(2017, 9, 30, 0, 0, 0, 0, time.UTC)
	}
	if opt.Ports <= 0 {
		opt.Ports = 6
	}
	if opt.EventRatio > 0 && opt.EventRatio < 1 {
		// Each port writes 2 lines per ~3.015 s (its 3 s period, a
		// mean 15 ms of jitter); noise fills the rest.
		portRate := 2 * float64(opt.Ports) / 3.015
		noiseRate := portRate * (1 - opt.EventRatio) / opt.EventRatio
		opt.NoiseGap = time.Duration(float64(time.Second) / noiseRate)
	}
	if opt.NoiseGap <= 0 {
		opt.NoiseGap = 20 * time.Millisecond
	}
	r := rand.New(rand.NewPCG(opt.Seed, 0xbe1c4))
	type port struct {
		id, mac []byte
		next    time.Duration
		uplink  bool
		world   int
	}
	ports := make([]port, opt.Ports)
	for i := range ports {
		ports[i] = port{
			id:     []byte("0x" + strconv.FormatUint(uint64(0x2000002+i), 16)),
			mac:    []byte(macOf(0x00505684_5a00 + uint64(i))),
			next:   time.Duration(r.Int64N(int64(3 * time.Second))),
			uplink: i%2 == 1,
			world:  65597 + r.IntN(200000),
		}
	}
	tail := benchTail()
	bw := bufio.NewWriterSize(w, 1<<20)
	var b []byte
	now := time.Duration(0)
	pending := -1 // port whose enabled line is due next
	for i := 0; i < n; i++ {
		b = b[:0]
		if left := n - i; left <= len(tail) {
			b = appendISO(b, opt.Start.Add(now+time.Duration(len(tail)-left)*time.Millisecond))
			b = append(b, tail[len(tail)-left]...)
		} else if pending >= 0 {
			p := &ports[pending]
			now += 3 * time.Millisecond
			b = appendISO(b, opt.Start.Add(now))
			b = appendCPU(b, r.IntN(8), p.world)
			if p.uplink {
				b = append(b, "Uplink: 9893: enabled port "...)
			} else {
				b = append(b, "NetPort: 982: enabled port "...)
			}
			b = append(b, p.id...)
			b = append(b, " with mac "...)
			b = append(b, p.mac...)
			p.next = now + 3*time.Second + time.Duration(r.IntN(30))*time.Millisecond
			pending = -1
		} else {
			gap := time.Duration(r.ExpFloat64() * float64(opt.NoiseGap))
			due := -1
			for k := range ports {
				if ports[k].next <= now+gap && (due < 0 || ports[k].next < ports[due].next) {
					due = k
				}
			}
			if due >= 0 {
				p := &ports[due]
				now = max(now, p.next)
				b = appendISO(b, opt.Start.Add(now))
				b = appendCPU(b, r.IntN(8), p.world)
				if p.uplink {
					b = append(b, "NetPort: 1879: disabled port "...)
				} else {
					b = append(b, "NetPort: 1165: disabled port "...)
				}
				b = append(b, p.id...)
				pending = due
			} else {
				now += gap
				b = appendISO(b, opt.Start.Add(now))
				b = noise(b, r)
			}
		}
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// benchTail is the crash at the end of the benchmark log (5.x wording).
func benchTail() []string {
	return []string{
		"cpu3:33421)WARNING: Heap: 3058: Heap netGPHeap-0x4306c8a00000 already at its maximum size. Cannot expand.",
		"cpu3:33421)WARNING: Heap: 4214: Heap_Align(netGPHeap-0x4306c8a00000, 4364/4364 bytes, 8 align) failed. caller: 0x41801c90bb4e",
		"cpu3:14258)User: 3080: wantCoreDump : vpxa -enabled : 1",
		"cpu11:14258)UserDump: 1820: Dumping cartel 14235 (from world 14258) to file /var/core/vpxa-zdump.000 ...",
	}
}

func macOf(v uint64) string {
	b := make([]byte, 0, 17)
	for i := 5; i >= 0; i-- {
		x := byte(v >> (8 * i))
		b = append(b, hexd[x>>4], hexd[x&0xf])
		if i > 0 {
			b = append(b, ':')
		}
	}
	return string(b)
}

const hexd = "0123456789abcdef"

func appendISO(b []byte, t time.Time) []byte {
	return t.AppendFormat(b, "2006-01-02T15:04:05.000Z ")
}

func appendCPU(b []byte, cpu, world int) []byte {
	b = append(b, "cpu"...)
	b = strconv.AppendInt(b, int64(cpu), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(world), 10)
	return append(b, ')')
}

func appendHex(b []byte, r *rand.Rand, digits int) []byte {
	b = append(b, "0x"...)
	v := r.Uint64()
	for i := 0; i < digits; i++ {
		b = append(b, hexd[v&0xf])
		v >>= 4
	}
	return b
}

func appendNum(b []byte, r *rand.Rand, n int64) []byte {
	return strconv.AppendInt(b, r.Int64N(n), 10)
}

// noise appends one line body in the shape of a real sample line
// (samples/vmkernel-5x.log, -8x, -9x) with its values varied.
func noise(b []byte, r *rand.Rand) []byte {
	b = appendCPU(b, r.IntN(24), 4096+r.IntN(900000))
	switch r.IntN(16) {
	case 0:
		b = append(b, "NMP: nmp_ThrottleLogForDevice:2318: Cmd 0x28 ("...)
		b = appendHex(b, r, 12)
		b = append(b, ", 12535) to dev \"naa.600508e000000000e51b24d0a7fad20e\" on path \"vmhba2:C0:T0:L"...)
		b = appendNum(b, r, 16)
		b = append(b, "\" Failed: H:0xb D:0x0 P:0x0 Possible sense data: 0x0 0x0 0x0. Act:NONE"...)
	case 1:
		b = append(b, "ScsiDeviceIO: 2309: Cmd("...)
		b = appendHex(b, r, 12)
		b = append(b, ") 0x2a, CmdSN "...)
		b = appendHex(b, r, 8)
		b = append(b, " from world 12535 to dev \"naa.600508e000000000e51b24d0a7fad20e\" failed H:0xb D:0x0 P:0x0"...)
	case 2:
		b = append(b, "HBX: 2313: Waiting for timed out [HB state abcdef02 offset 3964928 gen "...)
		b = appendNum(b, r, 100)
		b = append(b, " stampUS "...)
		b = appendNum(b, r, 1<<33)
		b = append(b, " uuid 5091de63-2683f5a0-1ea1-e4115baf243b jrnl <FB 60558> drv 14.54] on vol 'Datastore'"...)
	case 3:
		b = append(b, "WARNING: ScsiDeviceIO: 1218: Device naa.600508e000000000e51b24d0a7fad20e performance has deteriorated. I/O latency increased from average value of "...)
		b = appendNum(b, r, 20000)
		b = append(b, " microseconds to "...)
		b = appendNum(b, r, 400000)
		b = append(b, " microseconds."...)
	case 4:
		b = append(b, "NetSched: 628: vmnic0-0-tx: worldID = "...)
		b = appendNum(b, r, 900000)
		b = append(b, " exits"...)
	case 5:
		b = append(b, "CpuSched: 692: user latency of "...)
		b = appendNum(b, r, 900000)
		b = append(b, " vmnic0-0-tx 0 changed by 65579 HELPER_MISC_QUEUE-1-2 -6"...)
	case 6:
		b = append(b, "VSCSI: 2891: handle "...)
		b = appendNum(b, r, 9000)
		b = append(b, "(vscsi0:0):Reset [Retries: 0/0] from (vmm0:gen)"...)
	case 7:
		b = append(b, "VSCSI: 2679: handle "...)
		b = appendNum(b, r, 9000)
		b = append(b, "(vscsi0:0):Completing reset (0 outstanding commands)"...)
	case 8:
		b = append(b, "DEBUG (ne1000): checking link for adapter vmnic"...)
		b = appendNum(b, r, 4)
	case 9:
		b = append(b, "INFO (ne1000): vmnic0: Link is Up"...)
	case 10:
		b = append(b, "NRandomHwrng: 500: Out of entropy, refreshing."...)
	case 11:
		b = append(b, "Config: 727: \"TrackMigrations\" = 1, Old Value: 0, (Status: 0x0)"...)
	case 12:
		b = append(b, "Uplink: 537: vmnic"...)
		b = appendNum(b, r, 4)
		b = append(b, ": Driver claims supporting 0 RX queues, and 0 queues are accepted."...)
	case 13:
		b = append(b, "Tcpip: 1414: delete dstAddr="...)
		b = appendHex(b, r, 7)
		b = append(b, ", netMask=0xffffffff, gwAddr=0x6682000a ifName=0x0x0, ifNameLen=0"...)
	case 14:
		b = append(b, "NFSLock: 1505: Stop accessing fd "...)
		b = appendHex(b, r, 12)
		b = append(b, "(fi-0753971d-bf82-42f2-a175-d2ac9f412633-1-flat.vmdk)  3"...)
	case 15:
		b = append(b, "WARNING: VMotionRecv: 2618: "...)
		b = appendNum(b, r, 1<<50)
		b = append(b, " D: World 737163 waited 23.610 seconds to leave low memory state on dest host during pre-copy."...)
	}
	return b
}
