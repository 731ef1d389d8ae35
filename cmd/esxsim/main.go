// Command esxsim is a simulated VMware ESXi host for tests and the demo;
// installed under a root's bin/ and init.d/ it answers as vsish, vim-cmd,
// net-stats, esxcfg-vmknic, esxcli, vmware and the vpxa/hostd init
// scripts. See package
// esxsim.
package main

import (
	"os"

	"github.com/heapguard/heapguard/esxsim"
)

func main() {
	os.Exit(esxsim.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
