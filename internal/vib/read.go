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
	"path"
	"strconv"
	"strings"
)

// ErrFormat marks input that is not a VIB or bundle as this package reads
// them.
var ErrFormat = errors.New("not a VIB")

// Limits on what is read: heapguard's VIB is a few MB.
const (
	MaxVIBSize    = 256 << 20
	maxXMLSize    = 1 << 20
	maxTarEntries = 1024
)

// ReadAr splits an ar archive into its members, in order. It takes the
// format VIB Author writes and GNU ar's (a name ending in "/"); it knows no
// long-name tables.
func ReadAr(b []byte) ([]Member, error) {
	if !bytes.HasPrefix(b, []byte(arMagic)) {
		return nil, fmt.Errorf("%w: no ar magic %q", ErrFormat, arMagic)
	}
	var ms []Member
	off := len(arMagic)
	for off < len(b) {
		if len(b)-off < arHeaderLen {
			return nil, fmt.Errorf("%w: ar header at %d cut short", ErrFormat, off)
		}
		h := b[off : off+arHeaderLen]
		if string(h[58:60]) != "`\n" {
			return nil, fmt.Errorf("%w: ar header at %d does not end in \"`\\n\"", ErrFormat, off)
		}
		name := strings.TrimRight(string(h[0:16]), " ")
		name = strings.TrimSuffix(name, "/")
		if name == "" || strings.ContainsAny(name, "/\x00") {
			return nil, fmt.Errorf("%w: ar member name %q at %d", ErrFormat, h[0:16], off)
		}
		size, err := strconv.ParseInt(strings.TrimRight(string(h[48:58]), " "), 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("%w: ar member %s: size %q", ErrFormat, name, h[48:58])
		}
		off += arHeaderLen
		if size > int64(len(b)-off) {
			return nil, fmt.Errorf("%w: ar member %s: %d bytes, %d left", ErrFormat, name, size, len(b)-off)
		}
		ms = append(ms, Member{Name: name, Data: b[off : off+int(size)]})
		off += int(size)
		if size%2 == 1 && off < len(b) {
			off++ // padding
		}
	}
	return ms, nil
}

// Descriptor is what this package reads of descriptor.xml.
type Descriptor struct {
	XMLName         xml.Name  `xml:"vib"`
	FormatVersion   string    `xml:"version,attr"`
	Type            string    `xml:"type"`
	Name            string    `xml:"name"`
	Version         string    `xml:"version"`
	Vendor          string    `xml:"vendor"`
	Summary         string    `xml:"summary"`
	ReleaseDate     string    `xml:"release-date"`
	Files           []string  `xml:"file-list>file"`
	AcceptanceLevel string    `xml:"acceptance-level"`
	LiveInstall     string    `xml:"live-install-allowed"`
	LiveRemove      string    `xml:"live-remove-allowed"`
	StatelessReady  string    `xml:"stateless-ready"`
	MaintenanceMode string    `xml:"system-requires>maintenance-mode"`
	Payloads        []Payload `xml:"payloads>payload"`
}

// Payload is one <payload>.
type Payload struct {
	Name      string     `xml:"name,attr"`
	Type      string     `xml:"type,attr"`
	Size      int64      `xml:"size,attr"`
	Checksums []Checksum `xml:"checksum"`
}

// Checksum is one <checksum>.
type Checksum struct {
	Type   string `xml:"checksum-type,attr"`
	Verify string `xml:"verify-process,attr"`
	Sum    string `xml:",chardata"`
}

// ID is the VIB ID: vendor_type_name_version.
func (d *Descriptor) ID() string { return d.Vendor + "_" + d.Type + "_" + d.Name + "_" + d.Version }

// ParseDescriptor reads descriptor.xml and checks that the fields esxcli
// needs are there.
func ParseDescriptor(b []byte) (Descriptor, error) {
	var d Descriptor
	if len(b) > maxXMLSize {
		return d, fmt.Errorf("%w: descriptor.xml is %d bytes", ErrFormat, len(b))
	}
	if err := xml.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%w: descriptor.xml: %v", ErrFormat, err)
	}
	for _, f := range []struct{ name, v string }{
		{"type", d.Type}, {"name", d.Name}, {"version", d.Version}, {"vendor", d.Vendor}, {"acceptance-level", d.AcceptanceLevel},
	} {
		if strings.TrimSpace(f.v) == "" {
			return d, fmt.Errorf("%w: descriptor.xml has no %s", ErrFormat, f.name)
		}
	}
	if len(d.Payloads) == 0 {
		return d, fmt.Errorf("%w: descriptor.xml names no payload", ErrFormat)
	}
	return d, nil
}

// VIB is a read and checked VIB.
type VIB struct {
	Descriptor Descriptor
	Sig        []byte
	// Files are the payloads' entries, in order.
	Files []File
}

// Read checks a VIB: the ar members descriptor.xml, sig.pkcs7, then each
// payload the descriptor names, in that order; each payload's size and
// every checksum the descriptor gives (of the file, or of the gunzipped
// tar); and reads the tar's entries.
func Read(b []byte) (*VIB, error) {
	if len(b) > MaxVIBSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrFormat, len(b), MaxVIBSize)
	}
	ms, err := ReadAr(b)
	if err != nil {
		return nil, err
	}
	if len(ms) < 3 || ms[0].Name != "descriptor.xml" || ms[1].Name != "sig.pkcs7" {
		names := make([]string, len(ms))
		for i, m := range ms {
			names[i] = m.Name
		}
		return nil, fmt.Errorf("%w: ar members %q, want descriptor.xml, sig.pkcs7, then the payloads", ErrFormat, names)
	}
	d, err := ParseDescriptor(ms[0].Data)
	if err != nil {
		return nil, err
	}
	if len(ms)-2 != len(d.Payloads) {
		return nil, fmt.Errorf("%w: %d payload members, the descriptor names %d", ErrFormat, len(ms)-2, len(d.Payloads))
	}
	v := &VIB{Descriptor: d, Sig: ms[1].Data}
	for i, p := range d.Payloads {
		m := ms[i+2]
		if m.Name != p.Name {
			return nil, fmt.Errorf("%w: member %d is %q, the descriptor's payload %d is %q", ErrFormat, i+2, m.Name, i, p.Name)
		}
		files, err := checkPayload(p, m.Data)
		if err != nil {
			return nil, fmt.Errorf("payload %s: %w", p.Name, err)
		}
		v.Files = append(v.Files, files...)
	}
	return v, nil
}

func checkPayload(p Payload, data []byte) ([]File, error) {
	if p.Type != "tgz" && p.Type != "vgz" {
		return nil, fmt.Errorf("%w: type %q, want tgz", ErrFormat, p.Type)
	}
	if p.Size != int64(len(data)) {
		return nil, fmt.Errorf("%w: %d bytes, the descriptor says %d", ErrFormat, len(data), p.Size)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: gunzip: %v", ErrFormat, err)
	}
	tarData, err := io.ReadAll(io.LimitReader(zr, 4*MaxVIBSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: gunzip: %v", ErrFormat, err)
	}
	if len(tarData) > 4*MaxVIBSize {
		return nil, fmt.Errorf("%w: gunzips to more than %d bytes", ErrFormat, 4*MaxVIBSize)
	}
	if len(p.Checksums) == 0 {
		return nil, fmt.Errorf("%w: no checksum", ErrFormat)
	}
	for _, c := range p.Checksums {
		in := data
		switch c.Verify {
		case "":
		case "gunzip":
			in = tarData
		default:
			return nil, fmt.Errorf("%w: verify-process %q", ErrFormat, c.Verify)
		}
		var got string
		switch c.Type {
		case "sha-256":
			s := sha256.Sum256(in)
			got = hex.EncodeToString(s[:])
		case "sha-1":
			s := sha1.Sum(in)
			got = hex.EncodeToString(s[:])
		default:
			return nil, fmt.Errorf("%w: checksum-type %q", ErrFormat, c.Type)
		}
		if want := strings.ToLower(strings.TrimSpace(c.Sum)); got != want {
			return nil, fmt.Errorf("%w: %s checksum (verify-process %q) is %s, the descriptor says %s", ErrFormat, c.Type, c.Verify, got, want)
		}
	}
	return readTar(tarData)
}

func readTar(data []byte) ([]File, error) {
	tr := tar.NewReader(bytes.NewReader(data))
	var files []File
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: tar: %v", ErrFormat, err)
		}
		if len(files) >= maxTarEntries {
			return nil, fmt.Errorf("%w: more than %d tar entries", ErrFormat, maxTarEntries)
		}
		name := h.Name
		clean := path.Clean("/" + name)
		if strings.HasPrefix(name, "/") || clean == "/" || strings.Contains(name, "..") {
			return nil, fmt.Errorf("%w: tar entry %q: not a relative path inside the root", ErrFormat, name)
		}
		f := File{Path: name, Mode: h.Mode}
		switch h.Typeflag {
		case tar.TypeDir:
			if !strings.HasSuffix(f.Path, "/") {
				f.Path += "/"
			}
		case tar.TypeReg:
			if f.Data, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("%w: tar entry %s: %v", ErrFormat, name, err)
			}
		default:
			return nil, fmt.Errorf("%w: tar entry %s: type %q, want a file or a folder", ErrFormat, name, h.Typeflag)
		}
		files = append(files, f)
	}
}

// Bundle is what ReadBundle found in an offline bundle.
type Bundle struct {
	// Component name and version (7.x), "" when absent.
	ComponentName, ComponentVersion string
	// VIBs are the files the metadata lists, by relative path, each
	// checked against the metadata's size and sha-256.
	VIBs map[string][]byte
	// Members are the zip's member names, in order; MetadataMembers those of
	// metadata.zip.
	Members, MetadataMembers []string
}

type vendorList struct {
	Vendors []struct {
		IndexFile string `xml:"indexfile"`
	} `xml:"vendor"`
}

type metaList struct {
	Metadata []struct {
		Version string `xml:"version"`
		URL     string `xml:"url"`
	} `xml:"metadata"`
}

type metadataResponse struct {
	XMLName  xml.Name `xml:"metadataResponse"`
	Bulletin []struct {
		ID            string `xml:"id"`
		ComponentName struct {
			Name string `xml:"name,attr"`
		} `xml:"componentNameSpec"`
		ComponentVersion struct {
			Version string `xml:"version,attr"`
		} `xml:"componentVersionSpec"`
		VIBs []struct {
			ID   string `xml:"vibID"`
			File struct {
				RelativePath string `xml:"relativePath"`
				PackedSize   int64  `xml:"packedSize"`
				Checksum     struct {
					Type string `xml:"checksumType"`
					Sum  string `xml:"checksum"`
				} `xml:"checksum"`
			} `xml:"vibFile"`
		} `xml:"vibList>vib"`
	} `xml:"bulletin"`
}

// ReadBundle reads an offline bundle the way a depot is read: index.xml
// names vendor-index.xml, whose metadata url is metadata.zip, whose
// vmware.xml lists each bulletin's VIBs with their path, size and sha-256.
func ReadBundle(b []byte) (*Bundle, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: bundle zip: %v", ErrFormat, err)
	}
	out := &Bundle{VIBs: map[string][]byte{}}
	for _, f := range zr.File {
		out.Members = append(out.Members, f.Name)
	}
	var vl vendorList
	if err := readXML(zr, "index.xml", &vl); err != nil {
		return nil, err
	}
	if len(vl.Vendors) == 0 || vl.Vendors[0].IndexFile == "" {
		return nil, fmt.Errorf("%w: index.xml names no vendor index", ErrFormat)
	}
	var ml metaList
	if err := readXML(zr, vl.Vendors[0].IndexFile, &ml); err != nil {
		return nil, err
	}
	if len(ml.Metadata) == 0 || ml.Metadata[0].URL == "" {
		return nil, fmt.Errorf("%w: %s names no metadata", ErrFormat, vl.Vendors[0].IndexFile)
	}
	metaZip, err := readMember(zr, ml.Metadata[0].URL, MaxVIBSize)
	if err != nil {
		return nil, err
	}
	mr, err := zip.NewReader(bytes.NewReader(metaZip), int64(len(metaZip)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, ml.Metadata[0].URL, err)
	}
	for _, f := range mr.File {
		out.MetadataMembers = append(out.MetadataMembers, f.Name)
	}
	var md metadataResponse
	if err := readXML(mr, "vmware.xml", &md); err != nil {
		return nil, err
	}
	if len(md.Bulletin) == 0 {
		return nil, fmt.Errorf("%w: vmware.xml holds no bulletin", ErrFormat)
	}
	bl := md.Bulletin[0]
	out.ComponentName, out.ComponentVersion = bl.ComponentName.Name, bl.ComponentVersion.Version
	if len(bl.VIBs) == 0 {
		return nil, fmt.Errorf("%w: bulletin %s lists no VIB", ErrFormat, bl.ID)
	}
	for _, v := range bl.VIBs {
		rel := v.File.RelativePath
		data, err := readMember(zr, rel, MaxVIBSize)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != v.File.PackedSize || v.File.Checksum.Type != "sha-256" ||
			hex.EncodeToString(sum[:]) != strings.ToLower(strings.TrimSpace(v.File.Checksum.Sum)) {
			return nil, fmt.Errorf("%w: %s: %d bytes with sha-256 %x, vmware.xml says %d bytes with %s %s",
				ErrFormat, rel, len(data), sum, v.File.PackedSize, v.File.Checksum.Type, v.File.Checksum.Sum)
		}
		out.VIBs[rel] = data
	}
	return out, nil
}

func readMember(zr *zip.Reader, name string, limit int64) ([]byte, error) {
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, limit+1))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		if int64(len(data)) > limit {
			return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrFormat, name, limit)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%w: no %s in the zip", ErrFormat, name)
}

func readXML(zr *zip.Reader, name string, v any) error {
	data, err := readMember(zr, name, maxXMLSize)
	if err != nil {
		return err
	}
	if err := xml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
	}
	return nil
}
