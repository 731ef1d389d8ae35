package esxsim

import (
	"bufio"
	"fmt"
	"strings"
)

// vsishUsage is printed for arguments vsish does not take.
// unverified: vsish's own usage text was not captured.
const vsishUsage = "Usage: vsish [-e] [-r] [cmd [args]]\n" +
	"  -e  execute the command and exit\n" +
	"  -r  interpret the command as a raw path\n"

// runVsish answers `vsish -e ls /system/heaps/`, `vsish -e cat|get
// /system/heaps/<name>/stats`, and the same commands typed at vsish's
// interactive "/> " prompt (as in the incident).
func runVsish(c *call) int {
	args := c.args()
	if len(args) == 0 {
		return vsishInteractive(c)
	}
	if args[0] != "-e" || len(args) < 2 {
		fmt.Fprint(c.stderr, vsishUsage)
		return 1
	}
	out, code := vsishCmd(c, args[1:])
	fmt.Fprint(c.stdout, out)
	return code
}

func vsishInteractive(c *call) int {
	sc := bufio.NewScanner(c.stdin)
	for {
		fmt.Fprint(c.stdout, "/> ")
		if !sc.Scan() {
			fmt.Fprintln(c.stdout)
			return 0
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "exit" || f[0] == "quit" {
			return 0
		}
		out, _ := vsishCmd(c, f)
		fmt.Fprint(c.stdout, out)
	}
}

// vsishCmd runs one vsish command and returns its output and exit code.
// unverified: the error wording for a missing node.
func vsishCmd(c *call, f []string) (string, int) {
	st, ok := c.state()
	if !ok {
		return "", 1
	}
	v := st.Ver()
	if len(f) != 2 {
		return fmt.Sprintf("Error in command %s: Bad parameter\n", strings.Join(f, " ")), 1
	}
	cmd, p := f[0], f[1]
	parts := strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
	notFound := fmt.Sprintf("VSISHCmdGetInt():Get failed: Not found\nError in command %s %s: Not found\n", cmd, p)
	switch cmd {
	case "ls":
		switch {
		case len(parts) == 1 && parts[0] == "system":
			return "heaps/\n", 0
		case len(parts) == 2 && parts[0] == "system" && parts[1] == "heaps":
			return RenderHeapList(st.Heaps), 0
		case len(parts) == 3 && parts[0] == "system" && parts[1] == "heaps":
			if heapByFull(st, parts[2]) != nil {
				return "stats\n", 0
			}
		}
		return notFound, 1
	case "cat", "get":
		if len(parts) == 4 && parts[0] == "system" && parts[1] == "heaps" && parts[3] == "stats" {
			if h := heapByFull(st, parts[2]); h != nil {
				return RenderHeapStats(v, *h, cmd == "get"), 0
			}
		}
		return notFound, 1
	}
	return fmt.Sprintf("Error in command %s: Unknown command\n", cmd), 1
}

func heapByFull(st *State, name string) *Heap {
	for i := range st.Heaps {
		if st.Heaps[i].FullName() == name {
			return &st.Heaps[i]
		}
	}
	return nil
}
