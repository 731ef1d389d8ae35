package vib

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/testtool"
)

var testDate = time.Date(2026, 12, 1, 10, 20, 30, 0, time.UTC)

func testSpec() Spec {
	return Spec{Binary: []byte("\x7fELF heapguard test binary"), Version: "1.2.3-4", Date: testDate}
}

func mustBuild(t testing.TB, s Spec) Built {
	t.Helper()
	b, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ghettovcb", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ghettoHeaders are the ar member headers of the real VIB Author VIB
// (SOURCES.md), byte for byte.
var ghettoHeaders = []string{
	"descriptor.xml  0           0     0     0       1471      `\n",
	"sig.pkcs7       0           0     0     0       0         `\n",
	"payload1        0           0     0     0       35315     `\n",
}

// arHeader is a header as VIB Author writes it, from the real ones: the
// sizes replaced.
func arHeader(name string, size int) string {
	for _, h := range ghettoHeaders {
		if strings.HasPrefix(h, name+" ") {
			return h[:48] + fmt.Sprintf("%-10d", size) + "`\n"
		}
	}
	panic("no real header for " + name)
}

// TestVIBArLayout walks the ar bytes by hand (not with ReadAr): magic,
// then three members with VIB Author's header layout in the order
// descriptor.xml, sig.pkcs7 (empty), payload1.
func TestVIBArLayout(t *testing.T) {
	b := mustBuild(t, testSpec()).VIB
	if !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		t.Fatalf("starts %q, want the ar magic", b[:min(8, len(b))])
	}
	off := 8
	var sizes []int
	for i, name := range []string{"descriptor.xml", "sig.pkcs7", "payload1"} {
		if len(b) < off+60 {
			t.Fatalf("member %d: %d bytes left, want a 60-byte header", i, len(b)-off)
		}
		h := string(b[off : off+60])
		size, err := strconv.Atoi(strings.TrimSpace(h[48:58]))
		if err != nil {
			t.Fatalf("member %d header %q: size: %v", i, h, err)
		}
		if want := arHeader(name, size); h != want {
			t.Errorf("member %d header\n%q, want VIB Author's\n%q", i, h, want)
		}
		sizes = append(sizes, size)
		off += 60 + size
		if size%2 == 1 {
			if b[off] != '\n' {
				t.Errorf("member %s: odd size, padding %q, want \\n", name, b[off])
			}
			off++
		}
	}
	if off != len(b) {
		t.Errorf("%d bytes after the payload, want none", len(b)-off)
	}
	if sizes[1] != 0 {
		t.Errorf("sig.pkcs7 is %d bytes: a community VIB is unsigned", sizes[1])
	}
}

// TestVIBBusyboxAr reads the VIB with busybox's ar, an implementation
// other than this package's.
func TestVIBBusyboxAr(t *testing.T) {
	bb := testtool.Need(t, "busybox-static", "busybox")
	built := mustBuild(t, testSpec())
	p := filepath.Join(t.TempDir(), built.VIBName)
	if err := os.WriteFile(p, built.VIB, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "ar", "t", p).CombinedOutput()
	if err != nil {
		t.Fatalf("busybox ar t: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{"descriptor.xml", "sig.pkcs7", "payload1"}) {
		t.Errorf("busybox ar t lists %q", got)
	}
	desc, err := exec.Command(bb, "ar", "p", p, "descriptor.xml").Output()
	if err != nil {
		t.Fatalf("busybox ar p: %v", err)
	}
	if _, err := ParseDescriptor(desc); err != nil {
		t.Errorf("descriptor from busybox ar: %v", err)
	}
}

// children lists the element names directly under the root, in order.
func children(t *testing.T, doc []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	depth := 0
	var names []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("xml: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				names = append(names, e.Name.Local)
			}
		case xml.EndElement:
			depth--
		}
	}
}

func member(t *testing.T, vib []byte, name string) []byte {
	t.Helper()
	ms, err := ReadAr(vib)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m.Data
		}
	}
	t.Fatalf("no member %s", name)
	return nil
}

// TestDescriptorLikeVIBAuthor: the same elements in the same order as the
// real descriptor, one line without declaration, and the fields set.
func TestDescriptorLikeVIBAuthor(t *testing.T) {
	built := mustBuild(t, testSpec())
	desc := member(t, built.VIB, "descriptor.xml")
	real := readFixture(t, "descriptor.xml")
	if got, want := children(t, desc), children(t, real); !slices.Equal(got, want) {
		t.Errorf("descriptor elements\n%q, VIB Author's\n%q", got, want)
	}
	if bytes.Contains(desc, []byte("\n")) || bytes.HasPrefix(desc, []byte("<?xml")) || !bytes.HasPrefix(desc, []byte(`<vib version="5.0">`)) {
		t.Errorf("descriptor %.80q…: want one line starting <vib version=\"5.0\"> as VIB Author writes it", desc)
	}
	d, err := ParseDescriptor(desc)
	if err != nil {
		t.Fatal(err)
	}
	want := Descriptor{FormatVersion: "5.0", Type: "bootbank", Name: "heapguard", Version: "1.2.3-4", Vendor: "heapguard",
		ReleaseDate: "2026-12-01T10:20:30+00:00", AcceptanceLevel: "community", LiveInstall: "true", LiveRemove: "true",
		StatelessReady: "true", MaintenanceMode: "false", Files: []string{InitPath, BinaryPath}}
	got := d
	got.XMLName, got.Summary, got.Payloads = xml.Name{}, "", nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("descriptor\n%+v, want\n%+v", got, want)
	}
	if d.ID() != "heapguard_bootbank_heapguard_1.2.3-4" || built.ID != d.ID() {
		t.Errorf("ID %q, built.ID %q", d.ID(), built.ID)
	}
	// The real one parses the same way.
	rd, err := ParseDescriptor(real)
	if err != nil || rd.ID() != "virtuallyGhetto_bootbank_ghettoVCB_1.0.0-0.0.0" || rd.AcceptanceLevel != "community" || len(rd.Files) != 6 {
		t.Errorf("real descriptor: %+v, %v", rd, err)
	}
}

// TestPayloadChecksumsAndFiles computes the payload's size and sums here
// and reads its tar with archive/tar.
func TestPayloadChecksumsAndFiles(t *testing.T) {
	s := testSpec()
	built := mustBuild(t, s)
	d, err := ParseDescriptor(member(t, built.VIB, "descriptor.xml"))
	if err != nil {
		t.Fatal(err)
	}
	gz := member(t, built.VIB, "payload1")
	if len(d.Payloads) != 1 || d.Payloads[0].Name != "payload1" || d.Payloads[0].Type != "tgz" || d.Payloads[0].Size != int64(len(gz)) {
		t.Fatalf("payloads %+v, member of %d bytes", d.Payloads, len(gz))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	tarData, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	s256, s1, t256 := sha256.Sum256(gz), sha1.Sum(tarData), sha256.Sum256(tarData)
	want := []Checksum{
		{"sha-256", "", hex.EncodeToString(s256[:])},
		{"sha-256", "gunzip", hex.EncodeToString(t256[:])},
		{"sha-1", "gunzip", hex.EncodeToString(s1[:])},
	}
	if !slices.Equal(d.Payloads[0].Checksums, want) {
		t.Errorf("checksums %+v, want %+v", d.Payloads[0].Checksums, want)
	}
	tr := tar.NewReader(bytes.NewReader(tarData))
	type entry struct {
		name       string
		mode       int64
		dir        bool
		uid, gid   int
		user, grp  string
		mtime      time.Time
		sameAsData bool
	}
	var got []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		same := true
		switch h.Name {
		case BinaryPath:
			same = bytes.Equal(data, s.Binary)
		case InitPath:
			same = string(data) == InitScript
		}
		got = append(got, entry{h.Name, h.Mode, h.Typeflag == tar.TypeDir, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime.UTC(), same})
	}
	var wantE []entry
	for _, n := range []string{"etc/", "etc/init.d/", InitPath, "opt/", "opt/heapguard/", "opt/heapguard/bin/", BinaryPath} {
		wantE = append(wantE, entry{n, 0o755, strings.HasSuffix(n, "/"), 0, 0, "root", "root", testDate, true})
	}
	if !slices.Equal(got, wantE) {
		t.Errorf("payload entries\n%+v, want\n%+v", got, wantE)
	}
	if !strings.HasPrefix(InitScript, "#!/bin/sh\n") {
		t.Errorf("init script starts %.20q", InitScript)
	}
}

func TestBuildDeterministic(t *testing.T) {
	a, b := mustBuild(t, testSpec()), mustBuild(t, testSpec())
	if !bytes.Equal(a.VIB, b.VIB) || !bytes.Equal(a.Bundle, b.Bundle) {
		t.Error("the same spec gave different bytes")
	}
	s := testSpec()
	s.Date = s.Date.Add(time.Second)
	if c := mustBuild(t, s); bytes.Equal(a.VIB, c.VIB) {
		t.Error("another date gave the same VIB")
	}
}

func zipMembers(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		m[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return m
}

// paths lists every element path ("a/b/c") of an XML document, once each,
// in first-seen order.
func paths(t *testing.T, doc []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	var stack, out []string
	seen := map[string]bool{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("xml: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			stack = append(stack, e.Name.Local)
			p := strings.Join(stack, "/")
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
}

// TestBundleLikeVIBAuthor: the bundle's members and each XML file's
// element paths are the real bundle's, plus the component name and
// version; the metadata's size and sum of the VIB hold.
func TestBundleLikeVIBAuthor(t *testing.T) {
	built := mustBuild(t, testSpec())
	top := zipMembers(t, built.Bundle)
	rel := "vib20/heapguard/heapguard_bootbank_heapguard_1.2.3-4.vib"
	bd, err := ReadBundle(built.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"metadata.zip", "vendor-index.xml", "index.xml", rel}; !slices.Equal(bd.Members, want) {
		t.Errorf("bundle members %q, want VIB Author's layout %q", bd.Members, want)
	}
	if !bytes.Equal(top[rel], built.VIB) || !bytes.Equal(bd.VIBs[rel], built.VIB) {
		t.Error("the bundle's VIB is not the VIB")
	}
	if bd.ComponentName != "heapguard" || bd.ComponentVersion != "1.2.3-4" {
		t.Errorf("component %q %q", bd.ComponentName, bd.ComponentVersion)
	}
	meta := zipMembers(t, top["metadata.zip"])
	var vibsXML, bulletinXML string
	for _, n := range bd.MetadataMembers {
		switch {
		case strings.HasPrefix(n, "vibs/heapguard-") && strings.HasSuffix(n, ".xml"):
			vibsXML = n
		case n == "bulletins/heapguard.xml":
			bulletinXML = n
		}
	}
	if want := []string{"vmware.xml", "vendor-index.xml", vibsXML, bulletinXML}; vibsXML == "" || bulletinXML == "" || !slices.Equal(bd.MetadataMembers, want) {
		t.Errorf("metadata.zip members %q, want vmware.xml, vendor-index.xml, vibs/heapguard-N.xml, bulletins/heapguard.xml", bd.MetadataMembers)
	}
	extra := []string{"componentNameSpec", "componentVersionSpec"}
	for _, c := range []struct {
		ours         []byte
		real         string
		added        []string
		addedUnderVS bool
	}{
		{top["index.xml"], "index.xml", nil, false},
		{top["vendor-index.xml"], "vendor-index.xml", nil, false},
		{meta["vendor-index.xml"], "vendor-index.xml", nil, false},
		{meta["vmware.xml"], "vmware.xml", extra, false},
		{meta[bulletinXML], "bulletin.xml", extra, false},
		{meta[vibsXML], "vib-metadata.xml", []string{"system-requires/softwarePlatform"}, true},
	} {
		got := paths(t, c.ours)
		want := paths(t, readFixture(t, c.real))
		for _, a := range c.added {
			for _, p := range got {
				if strings.HasSuffix(p, "/"+a) {
					want = append(want, p)
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: element paths\n%q, want the real %s's (plus %q)\n%q", c.real, got, c.real, c.added, want)
		}
	}
	// The metadata's VIB entry is the descriptor plus where the VIB is.
	vd, err := ParseDescriptor(meta[vibsXML])
	if err != nil || vd.ID() != built.ID {
		t.Errorf("vibs xml: %+v, %v", vd, err)
	}
	sum := sha256.Sum256(built.VIB)
	for _, want := range []string{"<relative-path>" + rel + "</relative-path>", "<packed-size>" + strconv.Itoa(len(built.VIB)) + "</packed-size>", hex.EncodeToString(sum[:])} {
		if !strings.Contains(string(meta[vibsXML]), want) {
			t.Errorf("vibs xml lacks %q", want)
		}
	}
	for _, p := range Platforms {
		if !strings.Contains(string(meta["vmware.xml"]), `version="`+p+`" productLineID="embeddedEsx"`) {
			t.Errorf("vmware.xml names no platform %s", p)
		}
	}
}

// TestReadRealBundleMetadata: the reader takes the real bundle's files.
func TestReadRealBundleMetadata(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add := func(w *zip.Writer, name string, data []byte) {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data)
	}
	var mb bytes.Buffer
	mw := zip.NewWriter(&mb)
	add(mw, "vmware.xml", readFixture(t, "vmware.xml"))
	mw.Close()
	add(zw, "metadata.zip", mb.Bytes())
	add(zw, "vendor-index.xml", readFixture(t, "vendor-index.xml"))
	add(zw, "index.xml", readFixture(t, "index.xml"))
	zw.Close()
	_, err := ReadBundle(b.Bytes())
	// The VIB itself is not in testdata: the reader gets that far.
	if err == nil || !strings.Contains(err.Error(), "no vib20/ghettoVCB/virtuallyGhetto_bootbank_ghettoVCB_1.0.0-0.0.0.vib in the zip") {
		t.Errorf("ReadBundle of the real metadata: %v; want it to look for the VIB vmware.xml names", err)
	}
}

func TestReadChecksVIB(t *testing.T) {
	built := mustBuild(t, testSpec())
	v, err := Read(built.VIB)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Files) != 7 || v.Files[6].Path != BinaryPath || v.Files[6].Mode != 0o755 || len(v.Sig) != 0 {
		t.Errorf("read %d files, last %+v", len(v.Files), v.Files[len(v.Files)-1].Path)
	}
	ms, _ := ReadAr(built.VIB)
	rebuild := func(ms []Member) []byte {
		var b bytes.Buffer
		b.WriteString(arMagic)
		for _, m := range ms {
			writeArMember(&b, m)
		}
		return b.Bytes()
	}
	flip := func(b []byte, i int) []byte { c := slices.Clone(b); c[i] ^= 1; return c }
	gzTail := len(ms[2].Data) - 10 // inside the deflate stream's end
	for name, bad := range map[string][]byte{
		"swapped":           rebuild([]Member{ms[1], ms[0], ms[2]}),
		"no sig":            rebuild([]Member{ms[0], ms[2]}),
		"payload changed":   rebuild([]Member{ms[0], ms[1], {ms[2].Name, flip(ms[2].Data, gzTail)}}),
		"payload renamed":   rebuild([]Member{ms[0], ms[1], {"payload2", ms[2].Data}}),
		"payload truncated": rebuild([]Member{ms[0], ms[1], {ms[2].Name, ms[2].Data[:len(ms[2].Data)-1]}}),
		"cut":               cutData(built.VIB, ms),
		"no magic":          built.VIB[1:],
		"sum edited":        bytes.Replace(built.VIB, []byte(`"sha-1" verify-process="gunzip">`), []byte(`"sha-1" verify-process="gunzip">0`), 1),
	} {
		if _, err := Read(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Read = %v, want ErrFormat", name, err)
		}
	}
}

// cutData cuts the VIB's last data byte and the padding after it, if any
// (Read accepts a missing last pad).
func cutData(vib []byte, ms []Member) []byte {
	n := len(vib)
	if len(ms[len(ms)-1].Data)%2 == 1 {
		n--
	}
	return vib[:n-1]
}

func TestVersionOf(t *testing.T) {
	commit := time.Unix(1796541671, 0)
	for _, tc := range []struct {
		in, want string
		dirty    bool
	}{
		{"v1.2.3", "1.2.3-0", false}, {"1.2.3", "1.2.3-0", false}, {"v1.2.3-5-gabcdef0", "1.2.3-5", false},
		{"v0.9-12-g0123abc\n", "0.9-12", false}, {"v1.2.3-dirty", "1.2.3-0", true}, {"v1.2.3-5-gabcdef0-dirty", "1.2.3-5", true},
		{"b7437f7", "0.0.0-1796541671", false}, {"b7437f7-dirty", "0.0.0-1796541671", true}, {"dev", "0.0.0-1796541671", false},
		{"", "0.0.0-1796541671", false}, {"v1.2.x", "0.0.0-1796541671", false},
	} {
		if got, dirty := VersionOf(tc.in, commit); got != tc.want || dirty != tc.dirty {
			t.Errorf("VersionOf(%q) = %q, %v; want %q, %v", tc.in, got, dirty, tc.want, tc.dirty)
		}
		if got, _ := VersionOf(tc.in, commit); !versionRE.MatchString(got) {
			t.Errorf("VersionOf(%q) = %q: Build would refuse it", tc.in, got)
		}
	}
	if a, _ := VersionOf("b7437f7", commit); a == mustVersion("b7437f8", commit.Add(time.Second)) {
		t.Error("two untagged commits got one version")
	}
	s := testSpec()
	for _, bad := range []string{"1.2.3", "v1.2.3-0", "1.2.3-x", "1.2.3-0 ", "1.2.3-0/x"} {
		s.Version = bad
		if _, err := Build(s); err == nil {
			t.Errorf("Build with version %q: no error", bad)
		}
	}
}

func mustVersion(d string, c time.Time) string { v, _ := VersionOf(d, c); return v }

func FuzzReadAr(f *testing.F) {
	built := mustBuild(f, testSpec())
	f.Add(built.VIB[:400])
	f.Add([]byte("!<arch>\nx/              0           0     0     0       1         `\nab"))
	f.Add([]byte("!<arch>\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ReadAr(b)
		if err != nil {
			return
		}
		total := 0
		for _, m := range ms {
			total += len(m.Data)
		}
		if total > len(b) {
			t.Errorf("members hold %d bytes of %d", total, len(b))
		}
	})
}

func FuzzRead(f *testing.F) {
	s := testSpec()
	s.Binary = []byte("x")
	built := mustBuild(f, s)
	f.Add(built.VIB)
	f.Add(readFixture(f, "descriptor.xml"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Read(b)
		if err != nil {
			return
		}
		if v.Descriptor.Name == "" || len(v.Descriptor.Payloads) == 0 {
			t.Errorf("Read accepted %+v", v.Descriptor)
		}
		for _, f := range v.Files {
			if strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "..") {
				t.Errorf("file %q escapes the root", f.Path)
			}
		}
	})
}

func FuzzReadBundle(f *testing.F) {
	s := testSpec()
	s.Binary = []byte("x")
	built := mustBuild(f, s)
	f.Add(built.Bundle)
	f.Fuzz(func(t *testing.T, b []byte) {
		bd, err := ReadBundle(b)
		if err != nil {
			return
		}
		if len(bd.VIBs) == 0 {
			t.Error("a bundle without a VIB accepted")
		}
	})
}
