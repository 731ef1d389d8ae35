package deploy

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPartName(t *testing.T) {
	dl := time.Unix(1780000000, 0)
	for _, tc := range []struct{ host, want string }{
		{"esx01.lab.example", ".heapguard.1780000000.esx01.lab.example.0123456789abcdef.part"},
		{"fd00::12%eth0", ".heapguard.1780000000.fd00--12-eth0.0123456789abcdef.part"},
		{"", ".heapguard.1780000000.-.0123456789abcdef.part"},
		{strings.Repeat("a", 100), ".heapguard.1780000000." + strings.Repeat("a", partHostMax) + ".0123456789abcdef.part"},
	} {
		name := partName(dl, tc.host, "0123456789abcdef")
		if name != tc.want {
			t.Errorf("partName(%q) = %q, want %q", tc.host, name, tc.want)
		}
		if state, got := parsePartName(name); state != partDated || !got.Equal(dl) {
			t.Errorf("parsePartName(%q) = %v, %v", name, state, got)
		}
	}
	now := dl.Add(staleGrace)
	for name, stale := range map[string]bool{
		partName(dl, "h", "0123456789abcdef"):                     false, // deadline passed, within the grace
		partName(dl.Add(-time.Second), "h", "0123456789abcdef"):   true,
		partName(dl.Add(time.Hour), "h", "0123456789abcdef"):      false,
		".heapguard.0123456789abcdef.part":                        true, // the older form
		".heapguard.0123456789ABCDEF.part":                        false,
		".heapguard.1.h.0123456789abcde.part":                     false,
		".heapguard.-1.h.0123456789abcdef.part":                   false,
		".heapguard.1..0123456789abcdef.part":                     false,
		".heapguard.1.h.0123456789abcdef.part.x":                  false,
		"heapguard.1.h.0123456789abcdef.part":                     false,
		".heapguard.99999999999999999999.h.0123456789abcdef.part": false,
		"": false,
	} {
		if got := stalePart(name, now); got != stale {
			t.Errorf("stalePart(%q) = %v, want %v", name, got, stale)
		}
	}
	listing := partName(dl.Add(-time.Hour), "a", "0123456789abcdef") + "\n.heapguard.keep.part\n\n" + partName(dl.Add(time.Hour), "b", "0123456789abcdef") + "\n"
	if got := staleParts(listing, now); len(got) != 1 || !strings.Contains(got[0], ".a.") {
		t.Errorf("staleParts = %q", got)
	}
}

// FuzzParsePartName: any name parses without panic; a dated one holds no
// '/', and what partName makes parses back to its deadline.
func FuzzParsePartName(f *testing.F) {
	f.Add(".heapguard.1780000000.esx01.lab.0123456789abcdef.part", int64(1780000000), "esx01")
	f.Add(".heapguard.0123456789abcdef.part", int64(0), "fd00::1")
	f.Add(".heapguard..part", int64(-5), "")
	f.Add(".heapguard.1/2.x.0123456789abcdef.part", int64(1<<40), "a/b")
	f.Fuzz(func(t *testing.T, name string, sec int64, host string) {
		state, _ := parsePartName(name)
		if state != partForeign && strings.ContainsAny(name, "/\n") {
			t.Errorf("%q taken as a partial copy", name)
		}
		stalePart(name, time.Now())
		if sec < 0 || sec > 1e11 {
			return
		}
		made := partName(time.Unix(sec, 0), host, "0123456789abcdef")
		if strings.ContainsAny(made, "/\x00\n\r") {
			t.Fatalf("partName made %q", made)
		}
		if st, dl := parsePartName(made); st != partDated || dl.Unix() != sec {
			t.Errorf("parsePartName(%q) = %v, %v; want dated %d", made, st, dl, sec)
		}
	})
}

func TestWriteTable(t *testing.T) {
	results := []Result{
		{Target: Target{User: "root", Host: "esx01", Port: 22}, Action: Installed, SHA256: "3f2a9c1b0d4e5f66", Path: "/vmfs/volumes/ds1/heapguard/heapguard"},
		{Target: Target{User: "root", Host: "esx02", Port: 2222}, Err: errors.New("ssh root@esx02:2222: unknown host key:\n\tlong " + strings.Repeat("x", 200))},
		{Target: Target{User: "root", Host: "esx03", Port: 22}, Err: ErrNotStarted},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, results); err != nil {
		t.Fatal(err)
	}
	short := "ssh root@esx02:2222: unknown host key: long "
	short += strings.Repeat("x", tableErrorRunes-3-len(short)) + "..."
	want := "HOST             RESULT       SHA256        PATH OR ERROR\n" +
		"root@esx01:22    installed    3f2a9c1b0d4e  /vmfs/volumes/ds1/heapguard/heapguard\n" +
		"root@esx02:2222  failed       -             " + short + "\n" +
		"root@esx03:22    not started  -             -\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	if failed, notStarted := Count(results); failed != 1 || notStarted != 1 {
		t.Errorf("Count = %d, %d", failed, notStarted)
	}
}
