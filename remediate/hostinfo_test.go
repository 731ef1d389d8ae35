package remediate

import (
	"errors"
	"strings"
	"testing"
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
