package collector

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Chunks of a file, each read through a buffer of any size, split lines,
// oversized lines and CRs anywhere; every way gives the line-by-line
// result.
func TestScanChunksBuffers(t *testing.T) {
	for _, tail := range []string{
		strings.Repeat("Heap y ", 100), // oversized, without its newline
		"2017-09-30T17:27:31.509Z cpu1:65597)Uplink: 9893: enabled port 0x2000009 with mac 00:50:56:84:5a:b4",
	} {
		data := mixedLog(t, 3000, 11)
		// An oversized line longer than a whole buffer, and the tail.
		data = append(data, strings.Repeat("x enabled port 0x2 ", 2000)...)
		data = append(data, "\n2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000009\n"...)
		data = append(data, tail...)
		testScanChunksBuffers(t, data)
	}
}

func testScanChunksBuffers(t *testing.T, data []byte) {
	p := writeFile(t, "vmkernel.log", data)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const maxLine = 200
	opt := ScanOptions{Year: 2017}
	want := refScan(data, opt, time.Time{}, maxLine)
	if want.Oversized < 1 {
		t.Fatalf("test log lacks an oversized line: %+v", want)
	}
	forEachImpl(t, func(t *testing.T) {
		for _, cut := range []int64{1, int64(len(data)) / 3, int64(len(data)) - 5} {
			b, err := lineStart(f, int64(len(data)), cut)
			if err != nil {
				t.Fatal(err)
			}
			for _, buf := range []int{maxLine + 1, 3*4096 + 17, 1 << 20} {
				got, err := scanChunks(f, []int64{0, b, int64(len(data))}, opt, time.Time{}, buf, maxLine)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got, ignoreState); diff != "" {
					t.Errorf("chunks at %d, buffer %d (-want +got):\n%s", b, buf, diff)
				}
			}
		}
	})
}

// Marker phrases inside messages we do not track: the lines are parsed in
// full and still counted as Other, exactly as Parser.Parse says.
func TestScanMarkersInNoise(t *testing.T) {
	lines := []string{
		"2017-09-30T17:27:30.509Z cpu1:65597)NFS: 1227: Invalid volume UUID port 0x2000002 on server",
		"2017-09-30T17:27:30.509Z cpu1:65597)NFSLock: 515: reenabled port 0x2000002",
		"2017-09-30T17:27:30.509Z cpu1:65597)Mem: Heap usage is fine; Heap_Align( ok",
		"2017-09-30T17:27:30.509Z cpu1:65597)netGPHeap grew: Heapless Dump skipped, Dumpster wantCoreDump",
		"2017-09-30T17:27:30.509Z cpu1:65597)UserDump: Dumping cartel 1 (from world 2) nowhere",
		"2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000009",
		"2017-09-30T17:27:30.509Z cpu1:65597)Heap netGPHeap already at its maximum size. Cannot expand.",
		"  continuation with enabled port 0x3 and Heap x already at its maximum",
		"garbage enabled port 0x4 \x01",
		"2017-09-30T17:27:31.509Z cpu1:65597)Uplink: 9893: enabled port 0x2000009 with mac 00:50:56:84:5a:b4\r",
	}
	data := []byte(strings.Join(lines, "\n") + "\n")
	data = append(bytes.Repeat([]byte("2017-09-30T17:27:29.000Z cpu1:1)noise Heap\n"), 50), data...)
	opt := ScanOptions{}
	want := refScan(data, opt, time.Time{}, MaxLineLen)
	if want.Other < 55 || want.Events != 3 || want.Continuation != 1 || want.Unparsed != 1 {
		t.Fatalf("reference: %+v", want)
	}
	path := writeFile(t, "vmkernel.log", data)
	forEachImpl(t, func(t *testing.T) {
		got, err := ScanFile(path, opt)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, ignoreState); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}
