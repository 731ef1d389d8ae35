package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/heapguard/heapguard/deploy"
)

// agentSetup sorts the flags given after -- for the mode's command: those
// every agent command knows go to heapguard.conf ("name value" lines, read
// by check, run, serve and status alike); the mode command's own (run's
// --interval, serve's --allow-remote) stay on its command line. Each is
// checked by that command's own flag set, so a typo fails here, not on
// the host at 3 a.m.
func agentSetup(mode deploy.Mode, args []string) (config, extra []string, err error) {
	if len(args) == 0 {
		return nil, nil, nil
	}
	cmdName := map[deploy.Mode]string{deploy.ModeCron: "check", deploy.ModeDaemon: "run", deploy.ModeInetd: "serve"}[mode]
	if cmdName == "" {
		return nil, nil, fmt.Errorf("--mode %s runs nothing, so it takes no flags", mode)
	}
	for _, a := range args {
		if a == "--" || a == "-" {
			return nil, nil, fmt.Errorf("%q: heapguard %s takes flags only", a, cmdName)
		}
	}
	modeFlags := flag.NewFlagSet(cmdName, flag.ContinueOnError)
	modeFlags.SetOutput(io.Discard)
	commands[cmdName].flags(modeFlags)
	if err := modeFlags.Parse(args); err != nil {
		return nil, nil, fmt.Errorf("heapguard %s: %w", cmdName, err)
	}
	if modeFlags.NArg() > 0 {
		return nil, nil, fmt.Errorf("heapguard %s takes flags only, not %q", cmdName, modeFlags.Arg(0))
	}
	common := flag.NewFlagSet("agent", flag.ContinueOnError)
	addAgentFlags(common, false)
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		f := modeFlags.Lookup(name)
		if f == nil {
			return nil, nil, fmt.Errorf("%q: heapguard %s takes flags only", args[i], cmdName)
		}
		switch name {
		case "config", "root":
			return nil, nil, fmt.Errorf("--%s is deploy's to set (%s beside the binary, the host's /)", name, deploy.ConfigName)
		case "inetd", "replace":
			return nil, nil, fmt.Errorf("--%s is deploy's to set (--mode)", name)
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			if !hasValue {
				value = "true"
			}
		} else if !hasValue {
			i++
			value = args[i] // Parse above proved it is there
		}
		if common.Lookup(name) != nil {
			// applyConfig reads "name = value" too, so a leading "=" would be lost.
			if value != strings.TrimSpace(value) || strings.ContainsAny(value, "\"\r\n") || strings.HasPrefix(value, "=") || value == "" && !isBool(f) {
				return nil, nil, fmt.Errorf("--%s %q: heapguard.conf cannot keep a value with leading or trailing blanks, a leading \"=\", a double quote or a line break", name, value)
			}
			config = append(config, name+" "+value)
			continue
		}
		extra = append(extra, "--"+name+"="+value)
	}
	return config, extra, nil
}

func isBool(f *flag.Flag) bool {
	bf, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && bf.IsBoolFlag()
}
