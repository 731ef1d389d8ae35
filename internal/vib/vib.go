// Package vib builds heapguard as an ESXi VIB (vSphere Installation
// Bundle) at the CommunitySupported acceptance level, and the offline
// bundle zip that wraps it as a component for ESXi 7.x and later, without
// VMware's tools; and reads both back (for tests, esxsim and deploy).
//
// The format follows a VIB and bundle made by VMware's VIB Author and the
// open-source builders that write the same files by hand; the sources and
// what stays unverified are in testdata/SOURCES.md.
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
	"regexp"
	"strconv"
	"strings"
	"time"
)

// What the VIB is called and where it puts its files (payload paths
// have no leading slash).
const (
	Name    = "heapguard"
	Vendor  = "heapguard"
	VIBType = "bootbank"
	// VendorCode is the bundle's vendor code in index.xml (unverified:
	// any short code seems to do).
	VendorCode = "HG"
	// Acceptance is the descriptor's word for CommunitySupported.
	Acceptance = "community"

	BinaryPath = "opt/heapguard/bin/heapguard"
	InitPath   = "etc/init.d/heapguard"
	// PayloadName is the payload's ar member name.
	PayloadName = "payload1"

	Summary     = "heapguard: watches the netGPHeap and powers off flapping VMs"
	Description = "Static heapguard binary and an init script that runs heapguard run with a configuration file the administrator names. Nothing starts on its own."
	URL         = "https://github.com/heapguard/heapguard"
)

// Platforms are the ESXi versions the offline bundle's component names
// (VIB install -v takes the VIB on 5.x to 8.x without them).
var Platforms = []string{"7.*", "8.*"}

// Spec is what a VIB is built from.
type Spec struct {
	Binary []byte
	// Version is the VIB version, "1.2.3-0" (see VersionOf).
	Version string
	// Date is the release date and every file's time: the same Spec gives
	// the same bytes.
	Date time.Time
}

// Built is a VIB and its offline bundle.
type Built struct {
	ID         string // vendor_type_name_version
	VIB        []byte
	VIBName    string // heapguard-VERSION.vib
	Bundle     []byte
	BundleName string // heapguard-VERSION-offline-bundle.zip
}

var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*-[0-9]+(\.[0-9]+)*$`)

// VersionOf turns `git describe --tags` output into a VIB version: v1.2.3
// is 1.2.3-0, v1.2.3-5-gabcdef (five commits on) 1.2.3-5. Without a tag
// it is 0.0.0-N, N the commit's Unix time, below every release and rising
// with each commit: esxcli skips a VIB whose ID (hence version) is
// installed, so each build that differs must have its own. A dirty tree
// gets its commit's version (dirty is true: say so). esxcli compares
// versions part by part, so only digits and dots are kept.
func VersionOf(describe string, commit time.Time) (version string, dirty bool) {
	d := strings.TrimSpace(describe)
	d, dirty = strings.CutSuffix(d, "-dirty")
	m := regexp.MustCompile(`^v?([0-9]+(?:\.[0-9]+)*)(?:-([0-9]+)-g[0-9a-f]+)?$`).FindStringSubmatch(d)
	if m == nil {
		return "0.0.0-" + strconv.FormatInt(max(commit.Unix(), 0), 10), dirty
	}
	rel := m[2]
	if rel == "" {
		rel = "0"
	}
	return m[1] + "-" + rel, dirty
}

// ID is the VIB ID esxcli prints: vendor_type_name_version.
func ID(version string) string { return Vendor + "_" + VIBType + "_" + Name + "_" + version }

// Build makes the VIB and the offline bundle.
func Build(s Spec) (Built, error) {
	if !versionRE.MatchString(s.Version) {
		return Built{}, fmt.Errorf("vib version %q: want digits and dots, a dash, digits and dots (1.2.3-0)", s.Version)
	}
	if len(s.Binary) == 0 {
		return Built{}, errors.New("vib: no binary")
	}
	date := s.Date.UTC().Truncate(time.Second)
	payload, err := buildPayload(s.Binary, date)
	if err != nil {
		return Built{}, err
	}
	desc, err := descriptorXML(s.Version, date, payload)
	if err != nil {
		return Built{}, err
	}
	var vib bytes.Buffer
	vib.WriteString(arMagic)
	for _, m := range []Member{{"descriptor.xml", desc}, {"sig.pkcs7", nil}, {PayloadName, payload.gz}} {
		if err := writeArMember(&vib, m); err != nil {
			return Built{}, err
		}
	}
	b := Built{
		ID:         ID(s.Version),
		VIB:        vib.Bytes(),
		VIBName:    Name + "-" + s.Version + ".vib",
		BundleName: Name + "-" + s.Version + "-offline-bundle.zip",
	}
	if b.Bundle, err = buildBundle(b.ID, s.Version, date, desc, b.VIB); err != nil {
		return Built{}, err
	}
	return b, nil
}

// ar, as VIB Author writes it: the name left-aligned in 16 bytes (no
// GNU "/"), mtime, uid, gid and mode all "0", the decimal size, "`\n";
// odd-sized data padded with "\n".
const (
	arMagic     = "!<arch>\n"
	arHeaderLen = 60
)

// Member is one ar member.
type Member struct {
	Name string
	Data []byte
}

func writeArMember(w *bytes.Buffer, m Member) error {
	if len(m.Name) > 16 || m.Name == "" || strings.ContainsAny(m.Name, " /") {
		return fmt.Errorf("ar member name %q: want 1 to 16 characters, no space or /", m.Name)
	}
	fmt.Fprintf(w, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m.Name, "0", "0", "0", "0", len(m.Data))
	w.Write(m.Data)
	if len(m.Data)%2 == 1 {
		w.WriteByte('\n')
	}
	return nil
}

// payload is the gzip'd tar and what the descriptor says of it.
type payload struct {
	gz     []byte
	tarSum [sha256.Size]byte
	tarSHA [sha1.Size]byte
	files  []string
}

// File is one payload entry.
type File struct {
	Path string // no leading slash; a directory ends in "/"
	Mode int64
	Data []byte
}

// PayloadFiles are the installed files, directories first where they
// hold something, as VIB Author lists them.
func PayloadFiles(binary []byte) []File {
	return []File{
		{"etc/", 0o755, nil},
		{"etc/init.d/", 0o755, nil},
		{InitPath, 0o755, []byte(InitScript)},
		{"opt/", 0o755, nil},
		{"opt/heapguard/", 0o755, nil},
		{"opt/heapguard/bin/", 0o755, nil},
		{BinaryPath, 0o755, binary},
	}
}

func buildPayload(binary []byte, date time.Time) (payload, error) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	var p payload
	for _, f := range PayloadFiles(binary) {
		h := &tar.Header{
			Name: f.Path, Mode: f.Mode, ModTime: date, Uname: "root", Gname: "root",
			Typeflag: tar.TypeReg, Size: int64(len(f.Data)), Format: tar.FormatUSTAR,
		}
		if strings.HasSuffix(f.Path, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		} else {
			p.files = append(p.files, f.Path)
		}
		if err := tw.WriteHeader(h); err != nil {
			return payload{}, fmt.Errorf("payload %s: %w", f.Path, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return payload{}, fmt.Errorf("payload %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return payload{}, fmt.Errorf("payload: %w", err)
	}
	p.tarSum, p.tarSHA = sha256.Sum256(tb.Bytes()), sha1.Sum(tb.Bytes())
	var gb bytes.Buffer
	// No name and no time in the gzip header: the bytes depend on the
	// files alone.
	zw, err := gzip.NewWriterLevel(&gb, gzip.BestCompression)
	if err != nil {
		return payload{}, err
	}
	if _, err := zw.Write(tb.Bytes()); err != nil {
		return payload{}, fmt.Errorf("payload gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return payload{}, fmt.Errorf("payload gzip: %w", err)
	}
	p.gz = gb.Bytes()
	return p, nil
}

// releaseDate is VIB Author's layout (2020-12-29T03:03:07+00:00).
const releaseDate = "2006-01-02T15:04:05-07:00"

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// descriptorXML is descriptor.xml: one line, VIB Author's element order.
func descriptorXML(version string, date time.Time, p payload) ([]byte, error) {
	var b strings.Builder
	b.WriteString(`<vib version="5.0">`)
	fmt.Fprintf(&b, "<type>%s</type><name>%s</name><version>%s</version><vendor>%s</vendor>", VIBType, Name, esc(version), Vendor)
	fmt.Fprintf(&b, "<summary>%s</summary><description>%s</description>", esc(Summary), esc(Description))
	fmt.Fprintf(&b, "<release-date>%s</release-date>", date.Format(releaseDate))
	fmt.Fprintf(&b, `<urls><url key="%s">%s</url></urls>`, Name, esc(URL))
	b.WriteString("<relationships><depends/><conflicts/><replaces/><provides/><compatibleWith/></relationships>")
	b.WriteString("<software-tags/>")
	b.WriteString("<system-requires><maintenance-mode>false</maintenance-mode></system-requires>")
	b.WriteString("<file-list>")
	for _, f := range p.files {
		fmt.Fprintf(&b, "<file>%s</file>", esc(f))
	}
	b.WriteString("</file-list>")
	fmt.Fprintf(&b, "<acceptance-level>%s</acceptance-level>", Acceptance)
	// Installing adds files and starts nothing: no reboot, no maintenance mode.
	b.WriteString("<live-install-allowed>true</live-install-allowed><live-remove-allowed>true</live-remove-allowed>")
	b.WriteString("<cimom-restart>false</cimom-restart><stateless-ready>true</stateless-ready><overlay>false</overlay>")
	fmt.Fprintf(&b, `<payloads><payload name="%s" type="tgz" size="%d">`, PayloadName, len(p.gz))
	gzSum := sha256.Sum256(p.gz)
	fmt.Fprintf(&b, `<checksum checksum-type="sha-256">%s</checksum>`, hex.EncodeToString(gzSum[:]))
	// ESXi 8 refuses a payload without the gunzip sha-256.
	fmt.Fprintf(&b, `<checksum checksum-type="sha-256" verify-process="gunzip">%s</checksum>`, hex.EncodeToString(p.tarSum[:]))
	fmt.Fprintf(&b, `<checksum checksum-type="sha-1" verify-process="gunzip">%s</checksum>`, hex.EncodeToString(p.tarSHA[:]))
	b.WriteString("</payload></payloads></vib>")
	return []byte(b.String()), nil
}

// Offline bundle. Layout and elements: VIB Author's, plus the component
// name and version that make it a component for 7.x (SOURCES.md).

func platformsXML(tag string) string {
	var b strings.Builder
	for _, p := range Platforms {
		fmt.Fprintf(&b, `<%s locale="" version="%s" productLineID="embeddedEsx"/>`, tag, p)
	}
	return b.String()
}

func buildBundle(id, version string, date time.Time, desc, vib []byte) ([]byte, error) {
	rel := "vib20/" + Name + "/" + id + ".vib"
	vibSum := sha256.Sum256(vib)
	sum := hex.EncodeToString(vibSum[:])

	index := "<vendorList>\n  <vendor>\n    <name>" + Vendor + "</name>\n    <code>" + VendorCode + "</code>\n" +
		"    <indexfile>vendor-index.xml</indexfile>\n    <patchUrl></patchUrl>\n    <relativePath></relativePath>\n" +
		"    <content>\n      <name>VMware ESX</name>\n      <type>http://www.vmware.com/depotmanagement/esx</type>\n    </content>\n" +
		"  </vendor>\n</vendorList>\n"
	var vi strings.Builder
	vi.WriteString("<metaList>\n")
	for _, p := range Platforms {
		fmt.Fprintf(&vi, "  <metadata>\n    <productId>embeddedEsx</productId>\n    <version>%s</version>\n    <locale></locale>\n"+
			"    <url>metadata.zip</url>\n    <channelName>default</channelName>\n  </metadata>\n", p)
	}
	vi.WriteString("</metaList>\n")
	vendorIndex := vi.String()

	date0 := date.Format(releaseDate)
	component := fmt.Sprintf(`<componentNameSpec name="%s" uiString="%s"/><componentVersionSpec uiString="%s" version="%s"/>`, Name, Name, version, version)
	bulletinHead := "<id>" + Name + "</id><vendor>" + Vendor + "</vendor><summary>" + esc(Summary) + "</summary>" +
		"<severity>general</severity><category>general</category><urgency>important</urgency><releaseType>extension</releaseType>" +
		"<description>" + esc(Description) + "</description><kbUrl>" + esc(URL) + "</kbUrl><contact>" + esc(URL) + "</contact>" +
		component + "<releaseDate>" + date0 + "</releaseDate>"
	bulletin := "<bulletin>" + bulletinHead + "<platforms>" + platformsXML("softwarePlatform") + "</platforms>" +
		"<vibList><vibID>" + id + "</vibID></vibList></bulletin>"

	vmware := "<metadataResponse>\n  <version>3.0</version>\n  <timestamp>" + date.Format("2006-01-02T15:04:05.000000") + "</timestamp>\n" +
		"  <bulletin>" + bulletinHead + "<platforms>" + platformsXML("softwarePlatform") + "</platforms><vibList><vib>" +
		"<vibVersion>1.4.5</vibVersion><vibID>" + id + "</vibID><name>" + Name + "</name><version>" + version + "</version>" +
		"<vendor>" + Vendor + "</vendor><vibType>" + VIBType + "</vibType><summary>" + esc(Summary) + "</summary>" +
		"<systemReqs><maintenanceMode>false</maintenanceMode>" + platformsXML("swPlatform") + "</systemReqs>" +
		"<relationships><depends/><conflicts/><replaces/><provides/><compatibleWith/></relationships>" +
		"<postInstall><rebootRequired>false</rebootRequired><hostdRestart>false</hostdRestart></postInstall>" +
		"<vibFile><sourceUrl></sourceUrl><relativePath>" + rel + "</relativePath><packedSize>" + strconv.Itoa(len(vib)) + "</packedSize>" +
		"<checksum><checksumType>sha-256</checksumType><checksum>" + sum + "</checksum></checksum></vibFile>" +
		"</vib></vibList></bulletin>\n</metadataResponse>\n"

	// vibs/NAME-N.xml: the descriptor with where the VIB is and its sum
	// after software-tags, and the platforms in system-requires.
	d := string(desc)
	d = strings.Replace(d, "<software-tags/>", "<software-tags/><relative-path>"+rel+"</relative-path><packed-size>"+
		strconv.Itoa(len(vib))+`</packed-size><checksum checksum-type="sha-256">`+sum+"</checksum>", 1)
	d = strings.Replace(d, "</system-requires>", platformsXML("softwarePlatform")+"</system-requires>", 1)
	n, err := strconv.ParseUint(sum[:15], 16, 64)
	if err != nil {
		return nil, err
	}

	meta, err := zipOf(date, []Member{
		{"vmware.xml", []byte(vmware)},
		{"vendor-index.xml", []byte(vendorIndex)},
		{"vibs/" + Name + "-" + strconv.FormatUint(n, 10) + ".xml", []byte(d)},
		{"bulletins/" + Name + ".xml", []byte(bulletin)},
	})
	if err != nil {
		return nil, err
	}
	return zipOf(date, []Member{
		{"metadata.zip", meta},
		{"vendor-index.xml", []byte(vendorIndex)},
		{"index.xml", []byte(index)},
		{rel, vib},
	})
}

func zipOf(date time.Time, files []Member) ([]byte, error) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: date}
		h.SetMode(0o644)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", f.Name, err)
		}
		if _, err := w.Write(f.Data); err != nil {
			return nil, fmt.Errorf("zip %s: %w", f.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zip: %w", err)
	}
	return b.Bytes(), nil
}
