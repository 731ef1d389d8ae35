package deploy

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Target
		wantErr string
	}{
		{in: "esx01", want: Target{Host: "esx01", Port: 22}},
		{in: "root@esx01.lab.example:2222", want: Target{User: "root", Host: "esx01.lab.example", Port: 2222}},
		{in: "10.0.0.5", want: Target{Host: "10.0.0.5", Port: 22}},
		{in: "admin@corp.example@esx01", want: Target{User: "admin@corp.example", Host: "esx01", Port: 22}},
		{in: "[::1]", want: Target{Host: "::1", Port: 22}},
		{in: "[::1]:2222", want: Target{Host: "::1", Port: 2222}},
		{in: "root@[fe80::1%eth0]:22", want: Target{User: "root", Host: "fe80::1%eth0", Port: 22}},
		{in: "", wantErr: "empty"},
		{in: "::1", wantErr: "brackets"},
		{in: "fe80::1:22", wantErr: "brackets"},
		{in: "[::1", wantErr: "without ]"},
		{in: "[::1]x", wantErr: "after ]"},
		{in: "[::1]:", wantErr: "empty port"},
		{in: "[10.0.0.1]:22", wantErr: "IPv6"},
		{in: "[::ffff:10.0.0.1]", wantErr: "IPv6"},
		{in: "esx:", wantErr: "empty port"},
		{in: "esx:0", wantErr: "1 to 65535"},
		{in: "esx:65536", wantErr: "1 to 65535"},
		{in: "esx:022", wantErr: "1 to 65535"},
		{in: "esx:+22", wantErr: "1 to 65535"},
		{in: "esx:ssh", wantErr: "1 to 65535"},
		{in: "@esx", wantErr: "empty user"},
		{in: "-oProxyCommand=x", wantErr: "starts with -"},
		{in: "-u@esx", wantErr: "starts with -"},
		{in: "esx;reboot", wantErr: "not allowed"},
		{in: "esx 01", wantErr: "space"},
		{in: "esx\x00", wantErr: "control"},
		{in: ":22", wantErr: "empty host"},
		{in: "root@", wantErr: "empty host"},
	} {
		got, err := ParseTarget(tc.in)
		if tc.wantErr != "" {
			if !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseTarget(%q) = %+v, %v; want ErrTarget saying %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseTarget(%q) (-want +got):\n%s", tc.in, d)
		}
	}
	if s := (Target{User: "root", Host: "::1", Port: 2222}).String(); s != "root@[::1]:2222" {
		t.Errorf("String = %q", s)
	}
}

func TestParseHosts(t *testing.T) {
	in := "# lab hosts\n\nesx01\n  root@esx02:2222   # the odd one\n[::1]:2200\n\t\n"
	got, err := ParseHosts(strings.NewReader(in))
	want := []Target{{Host: "esx01", Port: 22}, {User: "root", Host: "esx02", Port: 2222}, {Host: "::1", Port: 2200}}
	if err != nil || !cmp.Equal(want, got) {
		t.Fatalf("ParseHosts = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct{ in, want string }{
		{"esx01\nesx02 esx03\n", "line 2: bad host: 2 hosts on one line"},
		{"esx01\n\n# x\nesx:99999\n", `line 4: bad host "esx:99999": port "99999"`},
		{"esx01\nroot@esx02\nesx01:22\n", `line 3: bad host "esx01:22": already on line 1`},
		{strings.Repeat("x", 70000), "line 1: bufio.Scanner: token too long"},
	} {
		_, err := ParseHosts(strings.NewReader(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseHosts(%.40q): %v; want %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParseHosts: never a panic; what parses prints back to itself.
func FuzzParseHosts(f *testing.F) {
	for _, s := range []string{"esx01\n", "root@esx:2222 # c\n", "[::1]:22\n[fe80::1%eth0]\n", "a@b@c:1\n", "esx:0\n", "[::1]x\n", "#\n\n \t\n", "x y\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		targets, err := ParseHosts(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("error without its line: %v", err)
			}
			return
		}
		for _, tg := range targets {
			back, err := ParseTarget(tg.String())
			if err != nil || back != tg {
				t.Errorf("%+v prints as %q, which parses to %+v, %v", tg, tg.String(), back, err)
			}
			if tg.Port < 1 || tg.Port > 65535 || tg.Host == "" || strings.HasPrefix(tg.Host, "-") {
				t.Errorf("accepted %+v", tg)
			}
		}
	})
}
