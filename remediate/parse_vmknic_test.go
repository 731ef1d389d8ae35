package remediate

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseVmknics(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Vmknic
		wantErr error
	}{
		// 6.x and later: Opaque Network and NetStack columns, the last one
		// padded with trailing blanks, a port group with a blank.
		{name: "esxcfg-vmknic-l-trailing-spaces.txt", in: invFixture(t, "esxcfg-vmknic-l-trailing-spaces.txt"), want: []Vmknic{
			{"vmk0", "c4:34:6b:b8:fd:40"}, {"vmk1", "00:50:56:6b:b7:14"}, {"vmk2", "00:50:56:65:d0:7f"},
		}},
		// An IPv6 row per NIC (no broadcast, colons in the address), port
		// groups that are DVPort ids or uuids: each NIC once.
		{name: "esxcfg-vmknic-l-ipv6-dvport.txt", in: invFixture(t, "esxcfg-vmknic-l-ipv6-dvport.txt"), want: []Vmknic{
			{"vmk0", "00:25:90:dd:e4:04"}, {"vmk1", "00:50:56:6e:8f:b3"}, {"vmk2", "00:50:56:6f:ed:28"}, {"vmk3", "00:50:56:65:cc:82"},
		}},
		// Before NetStack: Type is the last column, "STATIC, PREFERRED" has a blank.
		{name: "esxcfg-vmknic-l-no-netstack.txt", in: invFixture(t, "esxcfg-vmknic-l-no-netstack.txt"), want: []Vmknic{
			{"vmk0", "00:50:56:a3:95:e5"},
		}},
		// Neither IP Family nor TSO MSS, one blank between columns (the
		// blog collapsed them): the tokens still find the MAC.
		{name: "esxcfg-vmknic-l-whitespace-lost-2012.txt", in: invFixture(t, "esxcfg-vmknic-l-whitespace-lost-2012.txt"), want: []Vmknic{
			{"vmk0", "00:50:56:7c:ec:ca"}, {"vmk1", "00:50:56:7e:69:07"}, {"vmk3", "00:50:56:73:5a:3b"},
		}},
		{name: "header only: no vmknic", in: "Interface  Port Group/DVPort   IP Family IP Address\n", want: []Vmknic{}},
		{name: "CRLF, upper-case MAC", in: "Interface Port Group/DVPort IP Address Netmask Broadcast MAC Address MTU Enabled\r\nvmk0 Mgmt 1.1.1.2 255.255.255.0 1.1.1.255 00:50:56:7C:EC:CA 1500 true\r\n",
			want: []Vmknic{{"vmk0", "00:50:56:7c:ec:ca"}}},
		// A port group named like a MAC comes before the real one.
		{name: "port group that looks like a MAC", in: "Interface Port Group/DVPort IP Address MAC Address MTU\nvmk4 00:11:22:33:44:55 10.0.0.1 00:50:56:60:00:04 9000 true\n",
			want: []Vmknic{{"vmk4", "00:50:56:60:00:04"}}},
		{name: "empty", in: "", wantErr: ErrBadOutput},
		{name: "no header", in: "vmk0 Mgmt 1.1.1.2 255.255.255.0 1.1.1.255 00:50:56:7c:ec:ca 1500 true\n", wantErr: ErrBadOutput},
		{name: "an error instead of the list", in: "Error: Not Found\n", wantErr: ErrBadOutput},
		// A row without a MAC: a vmknic whose MAC is unknown spoils the list.
		{name: "row without a MAC", in: "Interface Port Group/DVPort IP Address\nvmk0 Mgmt 1.1.1.2 255.255.255.0 1500 true\nvmk1 NFS 1.1.3.2 255.255.255.0 1.1.3.255 00:50:56:73:5a:3b 1500 true\n",
			want: []Vmknic{{"vmk1", "00:50:56:73:5a:3b"}}, wantErr: ErrBadOutput},
		{name: "MAC without an MTU after it", in: "Interface\nvmk0 Mgmt 00:50:56:7c:ec:ca true\n", want: nil, wantErr: ErrBadOutput},
		{name: "a line that is no row", in: "Interface\nvmk0 Mgmt 1.1.1.2 255.255.255.0 1.1.1.255 00:50:56:7c:ec:ca 1500 true\n[2012-09-22 16:39:03 'NotifyDCUI' warning] Notifying the DCUI\n",
			want: []Vmknic{{"vmk0", "00:50:56:7c:ec:ca"}}, wantErr: ErrBadOutput},
		{name: "not a vmk name", in: "Interface\nvswif0 Service Console 1.1.1.2 00:50:56:7c:ec:ca 1500 true\n", want: nil, wantErr: ErrBadOutput},
		{name: "dash-separated MAC is not esxcfg-vmknic's", in: "Interface\nvmk0 Mgmt 1.1.1.2 00-50-56-7c-ec-ca 1500 true\n", want: nil, wantErr: ErrBadOutput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVmknics(strings.NewReader(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func FuzzParseVmknics(f *testing.F) {
	for _, s := range []string{"esxcfg-vmknic-l-trailing-spaces.txt", "esxcfg-vmknic-l-ipv6-dvport.txt",
		"esxcfg-vmknic-l-no-netstack.txt", "esxcfg-vmknic-l-whitespace-lost-2012.txt"} {
		f.Add(invFixture(f, s))
	}
	f.Fuzz(func(t *testing.T, in string) {
		nics, err := ParseVmknics(strings.NewReader(in))
		if err == nil && nics == nil {
			t.Fatal("nil list without an error")
		}
		if err == nil && !strings.Contains(in, "Interface") {
			t.Fatal("a list without a header")
		}
		seen := map[Vmknic]bool{}
		for _, n := range nics {
			if m, ok := NormalizeMAC(n.MAC); !ok || m != n.MAC || !vmknicName.MatchString(n.Name) || !strings.Contains(in, n.Name) {
				t.Fatalf("bad vmknic %+v", n)
			}
			if seen[n] {
				t.Fatalf("%+v twice", n)
			}
			seen[n] = true
		}
	})
}
