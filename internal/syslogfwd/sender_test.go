package syslogfwd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/remediate"
)

// recvDatagrams collects the datagrams c receives until n arrived or
// nothing came for a second.
func recvDatagrams(t *testing.T, c net.PacketConn, n int) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 64<<10)
	for len(got) < n {
		c.SetReadDeadline(time.Now().Add(time.Second))
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:k]))
	}
	return got
}

func msgs(n int) []Message {
	out := make([]Message, n)
	for i := range out {
		out[i] = Message{Time: t0, Severity: SevInfo, MsgID: "decide", Text: fmt.Sprintf("message %d", i)}
	}
	return out
}

func TestSendUDPAndUnixgram(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	sock := filepath.Join(t.TempDir(), "log")
	unix, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	for _, tc := range []struct {
		network, addr string
		c             net.PacketConn
		f             Format
		wantPrefix    string
	}{
		{"udp", udp.LocalAddr().String(), udp, RFC5424, "<30>1 2026-07-06T01:26:46.123456Z esx01 heapguard "},
		// The local socket gets no hostname in RFC 3164, as from syslog(3).
		{"unix", sock, unix, RFC3164, "<30>Jul  6 01:26:46 heapguard["},
	} {
		s, err := New(Config{Network: tc.network, Addr: tc.addr, Format: tc.f, Hostname: "esx01"})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs(5) {
			s.Send(m)
		}
		sent, dropped := s.Close(time.Second)
		got := recvDatagrams(t, tc.c, 5)
		if sent != 5 || dropped != 0 || len(got) != 5 {
			t.Fatalf("%s: sent %d dropped %d received %d, want 5 0 5", tc.network, sent, dropped, len(got))
		}
		for i, g := range got {
			if !strings.HasPrefix(g, tc.wantPrefix) || !strings.HasSuffix(g, fmt.Sprintf("message %d", i)) {
				t.Errorf("%s: datagram %d = %q, want %q... message %d", tc.network, i, g, tc.wantPrefix, i)
			}
		}
	}
}

// TestSendTCPFraming: RFC 5424 is octet-counted (RFC 6587 3.4.1), RFC
// 3164 newline-terminated.
func TestSendTCPFraming(t *testing.T) {
	for _, f := range []Format{RFC5424, RFC3164} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		received := make(chan []string, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				received <- nil
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(c)
			var got []string
			for {
				var m string
				if f == RFC5424 {
					lenText, err := r.ReadString(' ')
					if err != nil {
						break
					}
					n, err := strconv.Atoi(strings.TrimSuffix(lenText, " "))
					if err != nil {
						got = append(got, "bad length "+lenText)
						break
					}
					b := make([]byte, n)
					if _, err := io.ReadFull(r, b); err != nil {
						break
					}
					m = string(b)
				} else {
					line, err := r.ReadString('\n')
					if err != nil {
						break
					}
					m = strings.TrimSuffix(line, "\n")
				}
				got = append(got, m)
			}
			received <- got
		}()
		s, err := New(Config{Network: "tcp", Addr: ln.Addr().String(), Format: f, Hostname: "esx01"})
		if err != nil {
			t.Fatal(err)
		}
		// A VM name with a newline must not split a newline-framed message.
		sent := msgs(3)
		sent[1] = EntryMessage(remediate.Entry{Time: "2026-07-06T01:26:46Z", Action: "power_off", Target: "DSVA1\n<30>forged", Result: "ok"})
		for _, m := range sent {
			s.Send(m)
		}
		s.Close(time.Second)
		got := <-received
		ln.Close()
		if len(got) != 3 {
			t.Fatalf("%s over TCP: received %q, want 3 messages", f, got)
		}
		if want := `action=power_off target="DSVA1\n<30>forged" result=ok`; !strings.HasSuffix(got[1], want) {
			t.Errorf("%s over TCP: the VM name with a newline: %q, want it to end %q", f, got[1], want)
		}
		for i, g := range got {
			if i == 1 {
				continue
			}
			if !strings.HasPrefix(g, "<30>") || !strings.HasSuffix(g, fmt.Sprintf(" message %d", i)) {
				t.Errorf("%s over TCP: message %d = %q", f, i, g)
			}
		}
	}
}

// TestSendNeverWaits: a TCP collector that accepts and never reads, and a
// UDP port nobody listens on. Sending many more messages than the queue
// holds, each Send returns at once, what cannot go is dropped and
// counted, and Close returns within its flush time.
func TestSendNeverWaits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // never read
		}
	}()
	deaf, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deafAddr := deaf.LocalAddr().String()
	deaf.Close() // nothing listens there now

	big := strings.Repeat("x", 1000)
	for _, tc := range []struct{ network, addr string }{{"tcp", ln.Addr().String()}, {"udp", deafAddr}} {
		// A write timeout far above any scheduling delay: a Send or Close
		// that waited for the network would take it.
		s, err := New(Config{Network: tc.network, Addr: tc.addr, Format: RFC5424, QueueLen: 16,
			WriteTimeout: 20 * time.Second, MinBackoff: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		const n = 20000 // 20 MB for TCP: well beyond the socket buffers
		start := time.Now()
		var slowest time.Duration
		for i := range n {
			t1 := time.Now()
			s.Send(Message{Time: t0, Severity: SevInfo, Text: big + strconv.Itoa(i)})
			slowest = max(slowest, time.Since(t1))
		}
		sendAll := time.Since(start)
		start = time.Now()
		sent, dropped := s.Close(300 * time.Millisecond)
		closing := time.Since(start)
		t.Logf("%s: %d sends in %v (slowest %v), close %v; sent %d, dropped %d", tc.network, n, sendAll, slowest, closing, sent, dropped)
		// A loaded machine may stall a goroutine for a few hundred ms; a
		// Send that waited for the network would take the 20 s write
		// timeout.
		if slowest > 5*time.Second {
			t.Errorf("%s: a Send took %v: it waits for the network", tc.network, slowest)
		}
		if closing > 5*time.Second {
			t.Errorf("%s: Close took %v, want its 300ms flush time (and scheduling), not the write timeout", tc.network, closing)
		}
		if dropped == 0 || sent+dropped > n {
			t.Errorf("%s: sent %d + dropped %d of %d: want drops counted", tc.network, sent, dropped, n)
		}
		if tc.network == "tcp" && sent+dropped < n-1 {
			// At most the one message in a write cut off by Close is neither.
			t.Errorf("tcp: sent %d + dropped %d, want %d accounted for", sent, dropped, n)
		}
	}
}

// TestCloseWhileWriteBlocked: a collector that accepts and never reads
// until its socket buffers are full, so the sender's write blocks (for
// up to its 5 s write timeout). Sends still return at once, and Close
// returns within its flush time, counting what was queued as dropped.
func TestCloseWhileWriteBlocked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // never read
		}
	}()
	defer func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	}()
	s, err := New(Config{Network: "tcp", Addr: ln.Addr().String(), Format: RFC5424, QueueLen: 16, WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1000)
	var slowest time.Duration
	lastSent, stalledSince := uint64(0), time.Now()
	for start := time.Now(); ; {
		t1 := time.Now()
		s.Send(Message{Time: t0, Text: big})
		slowest = max(slowest, time.Since(t1))
		if n := s.Sent(); n != lastSent {
			lastSent, stalledSince = n, time.Now()
		} else if time.Since(stalledSince) > 500*time.Millisecond {
			break // the write has blocked for half a second
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the writes never blocked: sent %d", s.Sent())
		}
	}
	start := time.Now()
	sent, dropped := s.Close(300 * time.Millisecond)
	closing := time.Since(start)
	t.Logf("blocked after %d messages (%d KB); slowest Send %v; Close %v; dropped %d", sent, sent*1030/1000, slowest, closing, dropped)
	// Bounds well under the 5 s write timeout, well over what a loaded
	// machine adds.
	if slowest > 2500*time.Millisecond {
		t.Errorf("a Send took %v: it waits for the network (5 s write timeout)", slowest)
	}
	if closing > 2500*time.Millisecond {
		t.Errorf("Close took %v with a write blocked, want its 300ms flush time, not the write timeout", closing)
	}
	if dropped == 0 {
		t.Error("nothing counted as dropped")
	}
}

// TestSendReconnects: a collector that goes away and comes back gets
// messages again after the backoff.
func TestSendReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s, err := New(Config{Network: "tcp", Addr: addr, Format: RFC3164, MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(time.Second)
	c, err := func() (net.Conn, error) {
		s.Send(Message{Time: t0, Text: "first"})
		return ln.Accept()
	}()
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasSuffix(line, "first\n") {
		t.Fatalf("first message: %q, %v", line, err)
	}
	c.Close()
	ln.Close()
	// Down: sends fail and are dropped until a listener is back.
	deadline := time.Now().Add(5 * time.Second)
	for s.Dropped() == 0 && time.Now().Before(deadline) {
		s.Send(Message{Time: t0, Text: "lost"})
		time.Sleep(5 * time.Millisecond)
	}
	if s.Dropped() == 0 {
		t.Fatal("nothing dropped while the collector was gone")
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
		s.Send(Message{Time: t0, Text: "again"})
		select {
		case line := <-got:
			if !strings.HasSuffix(line, "again\n") {
				t.Fatalf("after reconnecting: %q", line)
			}
			return
		default:
		}
	}
	t.Fatal("no message within 5 s of the collector coming back")
}

// TestSendUnixStream: a local socket of the stream type (some syslog
// daemons make /dev/log one) is used as such, a message per line.
func TestSendUnixStream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var lines []string
		for sc := bufio.NewScanner(c); sc.Scan(); {
			lines = append(lines, sc.Text())
		}
		got <- lines
	}()
	s, err := New(Config{Network: "unix", Addr: sock, Format: RFC3164})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs(2) {
		s.Send(m)
	}
	if sent, dropped := s.Close(time.Second); sent != 2 || dropped != 0 {
		t.Fatalf("sent %d, dropped %d", sent, dropped)
	}
	lines := <-got
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "<30>Jul  6 01:26:46 heapguard[") || !strings.HasSuffix(lines[1], "]: message 1") {
		t.Errorf("stream socket got %q", lines)
	}
}
