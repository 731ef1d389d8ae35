package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyConfig(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string
		want    map[string]string
		wantErr string
	}{
		{name: "name value, name = value, --name, quotes and comments",
			file: "# comment\n\nwarn-below 15\n--crit-below = 5\npower-off-allow \"DSVA*\"\n",
			want: map[string]string{"warn-below": "15", "crit-below": "5", "power-off-allow": "DSVA*"}},
		{name: "the command line wins", file: "warn-below 15\n", args: []string{"--warn-below", "30"},
			want: map[string]string{"warn-below": "30"}},
		{name: "repeatable flags add up", file: "power-off-allow DSVA*\npower-off-allow web*\n",
			want: map[string]string{"power-off-allow": "DSVA*,web*"}},
		{name: "unknown setting", file: "frobnicate 1\n", wantErr: ":1: unknown setting"},
		{name: "bad value", file: "\nwarn-below lots\n", wantErr: `heapguard.conf:2: warn-below "lots": want a number like 12.5`},
		{name: "bad duration", file: "# every 5 what?\ninterval 5\n", wantErr: `heapguard.conf:2: interval "5": want a duration like 10s`},
		{name: "bad count", file: "max-power-offs = three\n", wantErr: `heapguard.conf:1: max-power-offs "three": want a whole number like 3`},
		{name: "bad bool", file: "dry-run perhaps\n", wantErr: `heapguard.conf:1: dry-run "perhaps": want true or false`},
		{name: "syslog to a collector, in RFC 5424", file: "syslog udp://collector.example:1514\nsyslog-format 5424\n",
			want: map[string]string{"syslog": "udp://collector.example:1514", "syslog-format": "5424"}},
		{name: "syslog to the local socket", file: "syslog true\n", want: map[string]string{"syslog": "true"}},
		{name: "syslog port defaults to 514", file: "syslog = tcp://collector\n", want: map[string]string{"syslog": "tcp://collector:514"}},
		{name: "bad syslog destination", file: "syslog ftp://collector\n", wantErr: `heapguard.conf:1: syslog "ftp://collector": scheme "ftp": want udp://HOST:PORT`},
		{name: "bad syslog format", file: "syslog-format json\n", wantErr: `heapguard.conf:1: syslog-format "json": want 3164 or 5424`},
		{name: "no nesting", file: "config other.conf\n", wantErr: "do not nest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "heapguard.conf")
			os.WriteFile(p, []byte(tt.file), 0o644)
			fs := flag.NewFlagSet("check", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			addAgentFlags(fs, true)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := applyConfig(fs, p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got := fs.Lookup(name).Value.String(); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}
