package esxsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// vimCmdTop is vim-cmd with no arguments. unverified: from public
// transcripts, not a sample.
const vimCmdTop = "Commands available under /:\n" +
	"hbrsvc/       internalsvc/  solo/         vmsvc/        \n" +
	"hostsvc/      proxysvc/     vimsvc/       help          \n"

// vimCmdVmsvc is the listing of the vmsvc commands esxsim knows.
const vimCmdVmsvc = "Commands available under vmsvc/:\n" +
	"getallvms          power.getstate     power.off          power.on           \n" +
	"power.shutdown     unregister         \n"

// vimFault renders a vmodl fault the way vim-cmd prints it.
// unverified: no real fault output was captured; this follows the
// format seen in public transcripts (type in parentheses, fields indented
// by 3 spaces, "msg" last).
func vimFault(kind string, fields [][2]string, msg string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "(vim.fault.%s) {\n", kind)
	b.WriteString("   faultCause = (vmodl.MethodFault) null, \n")
	b.WriteString("   faultMessage = <unset>, \n")
	for _, f := range fields {
		fmt.Fprintf(&b, "   %s = %s, \n", f[0], f[1])
	}
	fmt.Fprintf(&b, "   msg = %q\n}\n", msg)
	return b.String()
}

func invalidPowerState(requested string, vm *VM) string {
	existing, words := "poweredOff", "Powered off"
	if vm.PoweredOn {
		existing, words = "poweredOn", "Powered on"
	}
	return vimFault("InvalidPowerState", [][2]string{{"requestedState", strconv.Quote(requested)}, {"existingState", strconv.Quote(existing)}},
		"The attempted operation cannot be performed in the current state ("+words+").")
}

const toolsUnavailable = "Cannot complete operation because VMware Tools is not running in this virtual machine."

// runVimCmd answers vim-cmd vmsvc/… .
func runVimCmd(c *call) int {
	args := c.args()
	if len(args) == 0 {
		fmt.Fprint(c.stdout, vimCmdTop)
		return 0
	}
	cmd, ok := strings.CutPrefix(args[0], "vmsvc/")
	if !ok || cmd == "" {
		if args[0] == "vmsvc" || args[0] == "vmsvc/" {
			fmt.Fprint(c.stdout, vimCmdVmsvc)
			return 0
		}
		fmt.Fprint(c.stderr, vimCmdTop)
		return 1
	}
	rest := args[1:]
	switch cmd {
	case "getallvms":
		st, ok := c.state()
		if !ok {
			return 1
		}
		fmt.Fprint(c.stdout, RenderGetAllVMs(st.Scenario.Datastore, st.VMs))
		return 0
	case "power.getstate", "power.on", "power.off", "power.shutdown", "unregister":
	default:
		fmt.Fprintf(c.stderr, "Unknown command: '%s'\n", cmd) // unverified
		fmt.Fprint(c.stderr, vimCmdVmsvc)
		return 1
	}
	if len(rest) != 1 {
		// unverified: vim-cmd's usage wording.
		fmt.Fprintf(c.stderr, "Insufficient arguments.\nUsage: %s vmid\n", cmd)
		return 1
	}
	id, err := strconv.Atoi(rest[0])
	notFound := fmt.Sprintf("Unable to find a VM corresponding to \"%s\"\n", rest[0]) // unverified
	if cmd == "power.getstate" {
		st, ok := c.state()
		if !ok {
			return 1
		}
		vm := st.VM(id)
		if err != nil || vm == nil {
			fmt.Fprint(c.stdout, notFound)
			return 1
		}
		fmt.Fprint(c.stdout, RenderPowerState(*vm))
		return 0
	}
	return mutate(c, rest[0], func(st *State, s *sim) (int, string) {
		vm := st.VM(id)
		if err != nil || vm == nil {
			fmt.Fprint(c.stdout, notFound)
			return 1, "NotFound"
		}
		opID := fmt.Sprintf("%08x", s.r.Uint32())
		switch cmd {
		case "power.on":
			fmt.Fprint(c.stdout, "Powering on VM:\n")
			if vm.PoweredOn {
				fmt.Fprint(c.stdout, invalidPowerState("poweredOn", vm))
				return 1, "InvalidPowerState"
			}
			s.powerOn(vm, st.Now, opID)
		case "power.off":
			fmt.Fprint(c.stdout, "Powering off VM:\n")
			if !vm.PoweredOn {
				fmt.Fprint(c.stdout, invalidPowerState("poweredOff", vm))
				return 1, "InvalidPowerState"
			}
			s.powerOff(vm, st.Now, opID)
		case "power.shutdown":
			// Success prints nothing (sample note for power.shutdown 7);
			// the guest goes down ShutdownTime later, in run/Advance.
			if !vm.PoweredOn {
				fmt.Fprint(c.stdout, invalidPowerState("poweredOn", vm))
				return 1, "InvalidPowerState"
			}
			if !vm.ToolsRunning {
				fmt.Fprint(c.stdout, vimFault("ToolsUnavailable", nil, toolsUnavailable))
				return 1, "ToolsUnavailable"
			}
			if vm.ShutdownAt == nil {
				at := st.Now.Add(max(vm.ShutdownTime.D(), time.Millisecond))
				vm.ShutdownAt = &at
			}
		case "unregister":
			// The API's UnregisterVM refuses a running VM.
			// unverified: vim-cmd's output; here nothing on success and
			// the power operations' fault for a running VM.
			if vm.PoweredOn {
				fmt.Fprint(c.stdout, invalidPowerState("poweredOff", vm))
				return 1, "InvalidPowerState"
			}
			if err := s.unregister(id, st.Now, opID); err != nil {
				fmt.Fprintf(c.stderr, "%v\n", err)
				return 1, err.Error()
			}
		}
		return 0, "ok"
	})
}
