package main

import (
	"net"
	"testing"
)

// TestServeDefaultIsLoopback: serve with no --listen binds a loopback
// address, which checkListenAddr lets through without --allow-remote; any
// address that reaches other hosts needs the flag.
func TestServeDefaultIsLoopback(t *testing.T) {
	fs, _ := commands["serve"].flagSet(nil)
	f := fs.Lookup("listen")
	if f == nil {
		t.Fatal("serve has no --listen")
	}
	host, _, err := net.SplitHostPort(f.DefValue)
	if err != nil {
		t.Fatalf("--listen default %q: %v", f.DefValue, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Errorf("--listen default %q is not a loopback IP address", f.DefValue)
	}
	if err := checkListenAddr(f.DefValue, false); err != nil {
		t.Errorf("the default is refused: %v", err)
	}
	for _, addr := range []string{"0.0.0.0:9731", "[::]:9731", ":9731", "0:9731", "192.0.2.7:9731", "[::ffff:0.0.0.0]:9731", "esx01.example.com:9731"} {
		if err := checkListenAddr(addr, false); err == nil {
			t.Errorf("--listen %s accepted without --allow-remote", addr)
		}
	}
}
