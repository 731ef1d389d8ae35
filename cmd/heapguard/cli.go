package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes follow the Nagios plugin convention in every mode.
const (
	exitOK       = 0
	exitWarning  = 1
	exitCritical = 2
	exitUnknown  = 3 // bad usage, unreadable input
)

// Set by the build (-ldflags -X).
var (
	version = "dev"
	commit  = "unknown"
)

// env is what a command may touch: no globals, so tests call run directly.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one mode of heapguard, restic-style: it declares its flags on
// its own FlagSet and runs with what remains.
type command struct {
	name    string
	summary string
	usage   string // the argument synopsis after the command name
	help    string // description, examples and EXIT STATUS
	flags   func(fs *flag.FlagSet) any
	run     func(ctx context.Context, e env, opts any, args []string) int
	noArgs  bool // flags only: run names a stray argument and refuses it
	// keepDashes: run sees the "--" that ends the flags, as an argument
	// (deploy passes what follows on to heapguard on the hosts).
	keepDashes bool
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		writeHelp(stderr)
		return exitUnknown
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				fs, _ := c.flagSet(io.Discard)
				c.writeUsage(stdout, fs)
				return exitOK
			}
			fmt.Fprintf(stderr, "heapguard: unknown command %q\n", args[1])
			return exitUnknown
		}
		writeHelp(stdout)
		return exitOK
	case "version", "-version", "--version":
		return runVersion(args[1:], stdout, stderr)
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "heapguard: unknown command %q (see heapguard help)\n", name)
		return exitUnknown
	}
	// Errors are printed here, with the command's name.
	fs, opts := c.flagSet(io.Discard)
	explainForms(fs)
	usage := func(w io.Writer) {
		plain, _ := c.flagSet(io.Discard)
		c.writeUsage(w, plain)
	}
	positional, err := parseInterleaved(fs, args[1:], c.keepDashes)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// -h is a request, not a mistake: usage goes to stdout.
			usage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "heapguard %s: %s\n", c.name, redactURLs(err.Error()))
		usage(stderr)
		return exitUnknown
	}
	if c.noArgs && len(positional) > 0 {
		fmt.Fprintf(stderr, "heapguard %s: unexpected argument %q\n", c.name, positional[0])
		usage(stderr)
		return exitUnknown
	}
	code := c.run(ctx, e, opts, positional)
	if code == usageError {
		usage(stderr)
		return exitUnknown
	}
	return code
}

// parseInterleaved lets flags come after arguments too
// ("heapguard report messages --json"), as people type them; the flag
// package alone stops at the first argument. After "--" everything is an
// argument (and, with keepDashes, so is "--" itself).
func parseInterleaved(fs *flag.FlagSet, args []string, keepDashes bool) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			if keepDashes {
				positional = append(positional, "--")
			}
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usageError is returned by a command's run to have its usage printed.
const usageError = -1

func (c *command) flagSet(out io.Writer) (*flag.FlagSet, any) {
	fs := flag.NewFlagSet("heapguard "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	var opts any
	if c.flags != nil {
		opts = c.flags(fs)
	}
	// Usage is printed by run, once, to stdout for -h and stderr for mistakes.
	fs.Usage = func() {}
	return fs, opts
}

func (c *command) writeUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: heapguard %s %s\n\n%s\n", c.name, c.usage, c.summary)
	var hasFlags bool
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintf(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
}

func writeHelp(w io.Writer) {
	fmt.Fprintf(w, "heapguard keeps an ESXi host manageable when a leaking vmkernel heap\nis about to take its management agents down.\n\n")
	fmt.Fprintf(w, "Usage: heapguard <command> [flags] [arguments]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n  %-10s %s\n", "help", "show help for heapguard or one command", "version", "print version, commit and Go version (--json: also the runtime, as JSON)")
	fmt.Fprintf(w, "\nRun 'heapguard <command> -h' for a command's flags.\n")
	fmt.Fprintf(w, "\nEXIT STATUS (every command, Nagios convention):\n  0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad usage, unreadable input)\n")
}
