package remediate

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/esxsim"
)

// On a host without net-stats, LoadInventory reads the VMkernel NICs
// (esxsim answers esxcfg-vmknic -l from the scenario's type-3 ports); when
// esxcfg-vmknic is missing or fails they are unknown (nil) and say why.
func TestLoadInventoryVmknics(t *testing.T) {
	ctx := context.Background()
	want := []Vmknic{{Name: "vmk0", MAC: "00:25:b5:00:0a:1e"}, {Name: "vmk1", MAC: "00:50:56:6a:3c:91"}}

	h := esxsim.New(t, esxsim.Incident())
	inv, err := LoadInventory(ctx, esxsim.Runner{Root: h.Root()}, h.Root(), 0)
	if err != nil || inv.Ports == nil || inv.Vmknics != nil || inv.VmknicsErr != nil {
		t.Errorf("with net-stats: err %v, ports %d, vmknics %v (%v): want them not read", err, len(inv.Ports), inv.Vmknics, inv.VmknicsErr)
	}

	if err := os.Remove(h.Bin("net-stats")); err != nil {
		t.Fatal(err)
	}
	inv, err = LoadInventory(ctx, esxsim.Runner{Root: h.Root()}, h.Root(), 0)
	if err != nil || inv.Ports != nil || inv.VmknicsErr != nil {
		t.Fatalf("without net-stats: err %v, ports %v, vmknics error %v", err, inv.Ports, inv.VmknicsErr)
	}
	if diff := cmp.Diff(want, inv.Vmknics); diff != "" {
		t.Errorf("vmknics (-want +got)\n%s", diff)
	}
	// The scenario's vmk1 MAC, declared by no VM: the host's.
	o := inv.OwnerOf(ctx, 0x4000002, "00:50:56:6a:3c:91", PortLog{}, nil)
	if o.Vmknic == nil || o.Vmknic.Name != "vmk1" || o.Owner != nil {
		t.Errorf("vmk1's port: %+v", o)
	}

	h.AddFault(esxsim.Fault{Command: "esxcfg-vmknic", ExitCode: 1, Stderr: "Error: Unable to get vmknic list\n"})
	// Unknown vmknics make the inventory incomplete (its caller asks again soon).
	inv, err = LoadInventory(ctx, esxsim.Runner{Root: h.Root()}, h.Root(), 0)
	if inv.Vmknics != nil || inv.VmknicsErr == nil || errors.Is(inv.VmknicsErr, ErrNoVmknicList) || !errors.Is(err, inv.VmknicsErr) {
		t.Errorf("esxcfg-vmknic failing: vmknics %v, error %v, load error %v", inv.Vmknics, inv.VmknicsErr, err)
	}

	if err := os.Remove(h.Bin("esxcfg-vmknic")); err != nil {
		t.Fatal(err)
	}
	inv, err = LoadInventory(ctx, esxsim.Runner{Root: h.Root()}, h.Root(), 0)
	// No command: still unknown, but asking again soon would not help.
	if inv.Vmknics != nil || !errors.Is(inv.VmknicsErr, ErrNoVmknicList) || err != nil {
		t.Errorf("no esxcfg-vmknic: vmknics %v, error %v, load error %v; want unknown vmknics, the inventory complete", inv.Vmknics, inv.VmknicsErr, err)
	}
	power := RunnerPower(esxsim.Runner{Root: h.Root()}, 0)
	if o := inv.OwnerOf(ctx, 0x3000011, "00:50:56:84:5a:b4", PortLog{}, power); o.Owner != nil {
		t.Errorf("no esxcfg-vmknic: port given to %v by its MAC alone", o.Owner)
	}
}

// LoadVmknics runs esxcfg-vmknic -l with its own timeout, and a list it
// cannot read whole is no list.
func TestLoadVmknics(t *testing.T) {
	ctx := context.Background()
	r := &invRunner{out: map[string]string{"esxcfg-vmknic -l": invFixture(t, "esxcfg-vmknic-l-trailing-spaces.txt")}}
	nics, err := LoadVmknics(ctx, r, 0)
	if err != nil || len(nics) != 3 || r.tmo["esxcfg-vmknic -l"] != VmknicTimeout {
		t.Errorf("nics %v, err %v, timeout %v", nics, err, r.tmo)
	}
	r = &invRunner{out: map[string]string{"esxcfg-vmknic -l": "Interface  Port Group/DVPort   IP Family IP Address\n"}}
	if nics, err = LoadVmknics(ctx, r, 0); nics != nil || !errors.Is(err, ErrBadOutput) {
		t.Errorf("header only: nics %v, err %v; want unknown (every host has vmk0)", nics, err)
	}
	r = &invRunner{out: map[string]string{"esxcfg-vmknic -l": "Interface\nvmk0 Mgmt 00:50:56:7c:ec:ca 1500\nvmk1 garbled\n"}}
	nics, err = LoadVmknics(ctx, r, 0)
	if nics != nil || !errors.Is(err, ErrBadOutput) {
		t.Errorf("a garbled row: nics %v, err %v; want none and ErrBadOutput", nics, err)
	}
}
