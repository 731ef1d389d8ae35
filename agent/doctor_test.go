package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
)

// The layout follows esxcli's table format; no real capture of this
// command's output exists (see ../shared/samples/SOURCES.md, "Not found").
const kernelListEnforced = `Name               Type  Configured  Runtime  Default  Description
-----------------  ----  ----------  -------  -------  -----------
execInstalledOnly  Bool  TRUE        TRUE     FALSE    Only allow executables from installed VIBs to be executed.
`

func TestParseKernelSetting(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    KernelSetting
		wantErr error
	}{
		{name: "enforced", in: kernelListEnforced,
			want: KernelSetting{Name: "execInstalledOnly", Configured: true, Runtime: true, Default: "FALSE"}},
		{name: "configured, not in force until reboot",
			in:   strings.Replace(kernelListEnforced, "TRUE        TRUE", "TRUE        FALSE", 1),
			want: KernelSetting{Name: "execInstalledOnly", Configured: true, Default: "FALSE"}},
		{name: "lower-case name asked", in: strings.ReplaceAll(kernelListEnforced, "TRUE", "false"),
			want: KernelSetting{Name: "execInstalledOnly", Default: "FALSE"}},
		{name: "empty output", in: "", wantErr: ErrNoSetting},
		{name: "other setting only", in: "Name Type Configured Runtime Default Description\nfoo Bool TRUE TRUE FALSE x\n", wantErr: ErrNoSetting},
		{name: "no header", in: "execInstalledOnly Bool TRUE TRUE FALSE x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKernelSetting(strings.NewReader(tt.in), "execinstalledonly")
			if tt.name == "no header" {
				if err == nil {
					t.Fatalf("want an error without a header, got %+v", got)
				}
				return
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseKernelSetting(f *testing.F) {
	f.Add(kernelListEnforced)
	f.Add("Name Configured\nexecInstalledOnly\n")
	f.Fuzz(func(t *testing.T, in string) {
		ks, err := ParseKernelSetting(strings.NewReader(in), "execInstalledOnly")
		if err == nil && !strings.EqualFold(ks.Name, "execInstalledOnly") {
			t.Fatalf("returned row %q", ks.Name)
		}
	})
}

// TestDoctorOnEveryVersion runs doctor against a simulated host of each
// ESXi version: every check answers, and only an enforced
// execInstalledOnly (ESXi 8 esx80-eio) is a failure.
func TestDoctorOnEveryVersion(t *testing.T) {
	bin := esxsim.BuildBinary(t)
	for _, tc := range []struct {
		scenario, version string
		want              Level
		wantText          []string
	}{
		{"old-esx41", "", OK, []string{"4.1.0", "/var/log/messages", "format syslog-4x", "/etc/opt/init.d/vmware-vpxa"}},
		{"seed-incident", "5.5", OK, []string{"5.5.0", "/var/log/vmkernel.log", "format iso-5x", "/etc/init.d/vpxa", "netGPHeap"}},
		{"seed-incident", "6.7", OK, []string{"6.7.0 build 8169922", "format iso-5x"}},
		{"seed-incident", "7.0", OK, []string{"7.0.", "format iso-5x"}},
		{"esx80", "", OK, []string{"8.0.", "format esxi-8x", "execInstalledOnly  not enforced"}},
		{"esx80-eio", "", Crit, []string{"enforced", "install heapguard from a VIB"}},
	} {
		t.Run(tc.scenario+tc.version, func(t *testing.T) {
			t.Parallel()
			sc, err := esxsim.Preset(tc.scenario)
			if err != nil {
				t.Fatal(err)
			}
			opts := []esxsim.Option{esxsim.WithBinary(bin)}
			if tc.version != "" {
				opts = append(opts, esxsim.WithVersion(tc.version))
			}
			h := esxsim.New(t, sc, opts...)
			h.Advance(time.Minute)
			d := RunDoctor(context.Background(), DoctorOptions{
				Root: h.Root(), StateDir: filepath.Join(h.Root(), "vmfs/volumes/datastore1/heapguard-state"),
				// A stock build stands in for heapguard: the runtime line must warn.
				SelfExe: bin,
			})
			var out strings.Builder
			d.WriteText(&out)
			want := tc.want
			if want == OK {
				want = Warn
			}
			if d.Status != want {
				t.Errorf("status %s, want %s:\n%s", d.Status, want, out.String())
			}
			for _, f := range d.Findings {
				if f.Level != OK && f.Check != "runtime" && !(tc.want == Crit && f.Check == "execInstalledOnly") {
					t.Errorf("%s: %s %s", f.Check, f.Level, f.Detail)
				}
			}
			for _, s := range tc.wantText {
				if !strings.Contains(out.String(), s) {
					t.Errorf("doctor output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// TestDoctorStateOnRamdisk: a state folder under /tmp of the host is lost
// at boot, and doctor says so.
func TestDoctorStateOnRamdisk(t *testing.T) {
	h := esxsim.New(t, esxsim.Incident(), esxsim.WithBinary(esxsim.BuildBinary(t)))
	d := RunDoctor(context.Background(), DoctorOptions{Root: h.Root(), StateDir: filepath.Join(h.Root(), "tmp/heapguard")})
	for _, f := range d.Findings {
		if f.Check == "state" {
			if f.Level != Warn || !strings.Contains(f.Detail, "empties at boot") {
				t.Errorf("state finding %+v: want a warning about /tmp", f)
			}
			return
		}
	}
	t.Fatal("no state finding")
}

// TestDoctorPorts: doctor says whether flapping ports can be confirmed
// live (net-stats -l), and what heapguard does when they cannot.
func TestDoctorPorts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault bool
		want  Level
		text  string
	}{
		{"net-stats answers", false, OK, "a flapping port's owner is confirmed live"},
		{"net-stats fails", true, Warn, "no live port list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := esxsim.New(t, esxsim.Incident())
			if tc.fault {
				h.AddFault(esxsim.Fault{Command: "net-stats", ExitCode: 1, Stderr: "net-stats: not found\n"})
			}
			d := RunDoctor(context.Background(), DoctorOptions{Root: h.Root(), StateDir: t.TempDir(), Runner: esxsim.Runner{Root: h.Root()}})
			for _, f := range d.Findings {
				if f.Check == "ports" {
					if f.Level != tc.want || !strings.Contains(f.Detail, tc.text) {
						t.Errorf("ports finding %+v: want %s holding %q", f, tc.want, tc.text)
					}
					return
				}
			}
			t.Fatal("no ports finding")
		})
	}
}
