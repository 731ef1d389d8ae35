package remediate

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// VMX is what heapguard needs of a .vmx file.
type VMX struct {
	// DisplayName is "" when the file has none.
	DisplayName string `json:"display_name,omitempty"`
	// NICs are the ethernetN devices, by index.
	NICs []NIC `json:"nics,omitempty"`
	// Values holds every key (lower-cased) with its decoded value.
	Values map[string]string `json:"-"`
	// Skipped counts lines that were not "key = value" or comments.
	Skipped int `json:"skipped,omitempty"`
}

// NIC is one ethernetN device of a .vmx file.
type NIC struct {
	Index   int  `json:"index"`
	Present bool `json:"present"`
	// AddressType is lower-cased: "generated", "vpx" (assigned by
	// vCenter) or "static"; "" when the key is absent.
	AddressType string `json:"address_type,omitempty"`
	// GeneratedAddress and Address (the static one) are normalised MACs,
	// "" when absent or not a MAC.
	GeneratedAddress string `json:"generated_address,omitempty"`
	Address          string `json:"address,omitempty"`
	NetworkName      string `json:"network_name,omitempty"`
	VirtualDev       string `json:"virtual_dev,omitempty"`
}

// MAC is the address the NIC uses: the static address for addressType
// "static", else the generated one; whichever exists when only one does.
func (n NIC) MAC() string {
	if n.AddressType == "static" && n.Address != "" || n.GeneratedAddress == "" {
		return n.Address
	}
	return n.GeneratedAddress
}

// MACs lists the NIC's distinct addresses (generated and static): a VM
// can be matched by either, whatever addressType says.
func (n NIC) MACs() []string {
	var out []string
	for _, m := range []string{n.GeneratedAddress, n.Address} {
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// maxNICIndex bounds ethernetN so a hostile file cannot make us allocate;
// ESXi allows 10 NICs per VM.
const maxNICIndex = 64

// ParseVMX parses a .vmx file: `key = "value"` lines, keys compared
// without case (ESXi writes "ethernet0.generatedAddress", people edit in
// other cases). Values are unquoted and their "|XX" hex escapes decoded
// (the .vmx encoding of '"', '|' and non-ASCII bytes). MACs are normalised
// to lower case.
//
// The vpx/generated forms come from real files (testdata/vmx-ethernet*.txt);
// no real sample of `addressType = "static"` with `ethernetN.address` was
// found (testdata/SOURCES.md "Not found"), so that form follows VMware's
// documentation and is unverified.
func ParseVMX(r io.Reader) (VMX, error) {
	v := VMX{Values: map[string]string{}}
	nics := map[int]*NIC{}
	err := scanLines(r, func(line string) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ".encoding") && !strings.Contains(line, "=") {
			return
		}
		k, val, ok := strings.Cut(line, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" || strings.ContainsAny(k, " \t\"") {
			v.Skipped++
			return
		}
		val = vmxUnquote(strings.TrimSpace(val))
		v.Values[k] = val
		if k == "displayname" {
			v.DisplayName = val
			return
		}
		idx, field, ok := vmxEthernetKey(k)
		if !ok {
			return
		}
		n := nics[idx]
		if n == nil {
			n = &NIC{Index: idx}
			nics[idx] = n
		}
		switch field {
		case "present":
			n.Present = strings.EqualFold(val, "true")
		case "addresstype":
			n.AddressType = strings.ToLower(val)
		case "generatedaddress":
			n.GeneratedAddress, _ = NormalizeMAC(val)
		case "address":
			n.Address, _ = NormalizeMAC(val)
		case "networkname":
			n.NetworkName = val
		case "virtualdev":
			n.VirtualDev = val
		}
	})
	for _, n := range nics {
		v.NICs = append(v.NICs, *n)
	}
	slices.SortFunc(v.NICs, func(a, b NIC) int { return a.Index - b.Index })
	if err != nil {
		return v, fmt.Errorf("parse vmx: %w", err)
	}
	return v, nil
}

// vmxEthernetKey splits "ethernet2.generatedaddress" into 2 and "generatedaddress".
func vmxEthernetKey(k string) (int, string, bool) {
	rest, ok := strings.CutPrefix(k, "ethernet")
	if !ok {
		return 0, "", false
	}
	num, field, ok := strings.Cut(rest, ".")
	if !ok || num == "" || len(num) > 3 {
		return 0, "", false
	}
	idx, err := strconv.Atoi(num)
	if err != nil || idx < 0 || idx > maxNICIndex {
		return 0, "", false
	}
	return idx, field, true
}

// vmxUnquote strips the double quotes around a value and decodes "|XX".
func vmxUnquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if !strings.Contains(s, "|") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '|' && i+2 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(c))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
