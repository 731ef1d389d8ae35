package collector

import (
	"bufio"
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"path"
	"time"
)

// LogKind is which program's log a file is, judged from its lines (a
// bundle or a ticket names files anyhow).
type LogKind uint8

const (
	// LogVmkernel is the vmkernel log (or 4.x /var/log/messages): the default.
	LogVmkernel LogKind = iota
	// LogHostd is hostd.log: "… info hostd[7BA40B70] [Originator@6876 …", "… Hostd[169827]: …".
	LogHostd
	// LogVpxa is vpxa.log: the same shapes with "vpxa[" / "Vpxa[".
	LogVpxa
	// LogVobd is vobd.log: "[UserWorldCorrelator] 11239267815288us: [vob.uw.core.dumped] …".
	LogVobd
)

var logKindNames = [...]string{"vmkernel", "hostd", "vpxa", "vobd"}

func (k LogKind) String() string {
	if int(k) < len(logKindNames) {
		return logKindNames[k]
	}
	return fmt.Sprintf("logkind(%d)", int(k))
}

// MarshalText writes the kind's name.
func (k LogKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

var _ encoding.TextMarshaler = LogKind(0)

// detectSample is how much of a file's start DetectLog reads.
const detectSample = 64 << 10

// DetectLog judges from a file's first lines which log it is: each line
// votes for the program that wrote it, and the agents' logs win only with
// more votes than the vmkernel's. A file with no telling line is taken for
// a vmkernel log, as before.
func DetectLog(head []byte) LogKind {
	var votes [len(logKindNames)]int
	for n := 0; len(head) > 0 && n < 200; n++ {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		votes[lineWriter(trimCR(line))]++
	}
	best := LogVmkernel
	for k := LogHostd; k <= LogVobd; k++ {
		if votes[k] > votes[best] {
			best = k
		}
	}
	return best
}

// lineWriter says whose line b looks like; LogVmkernel also for "nobody's".
func lineWriter(b []byte) LogKind {
	switch {
	case bytes.Contains(b, []byte("Correlator] ")) || bytes.Contains(b, []byte("vobd: ")):
		return LogVobd
	case bytes.Contains(b, []byte("hostd[")) || bytes.Contains(b, []byte("Hostd[")) || bytes.Contains(b, []byte("Hostd: ")):
		return LogHostd
	case bytes.Contains(b, []byte("vpxa[")) || bytes.Contains(b, []byte("Vpxa[")) || bytes.Contains(b, []byte("Vpxa: ")):
		return LogVpxa
	}
	return LogVmkernel
}

// KindAgentCrash lines come from the agents' logs: vobd's
// "[vob.uw.core.dumped] /usr/lib/vmware/vpxa/bin/vpxa(34895)
// /var/core/vpxa-worker-zdump.000", and vobd's and hostd's "<binary>
// crashed (1 time(s) so far) and a core file may have been created at
// <core>".
//
// agentCrash reads one; Process is the core file's name ("vpxa-worker")
// or else the binary's, CoreFile the core's path when given.
func agentCrash(b []byte) (Event, bool) {
	var bin, core []byte
	if i := bytes.Index(b, []byte("[vob.uw.core.dumped] ")); i >= 0 {
		rest := b[i+len("[vob.uw.core.dumped] "):]
		bin = token(rest)
		if p := bytes.IndexByte(bin, '('); p > 0 {
			bin = bin[:p]
		}
		if len(rest) > len(token(rest)) {
			core = token(rest[len(token(rest))+1:])
		}
	} else {
		const crashed = " crashed ("
		i := bytes.Index(b, []byte(crashed))
		if i < 0 || !bytes.Contains(b[i:], []byte(" time(s) so far)")) {
			return Event{}, false
		}
		sp := bytes.LastIndexByte(b[:i], ' ')
		bin = b[sp+1 : i]
		const at = " created at "
		if k := bytes.Index(b[i:], []byte(at)); k >= 0 {
			core = bytes.TrimSuffix(token(b[i+k+len(at):]), []byte("."))
		}
	}
	if len(bin) < 2 || bin[0] != '/' || len(core) > 0 && core[0] != '/' {
		return Event{}, false // a path is what vobd and hostd write
	}
	ev := Event{Kind: KindAgentCrash, Process: path.Base(string(bin))}
	if len(core) > 0 {
		ev.CoreFile = string(core)
		name := path.Base(ev.CoreFile)
		if z := bytes.Index([]byte(name), []byte("-zdump")); z > 0 {
			ev.Process = name[:z]
		}
	}
	ev.Agent = AgentOf(string(bin))
	return ev, true
}

// scanAgentLog reads an agent's log: every line is counted, its crash
// lines counted as events (with their time when the line's header gives
// one); the rest is Other, or Unparsed when it is not text.
func (st *scanState) scanAgentLog(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	skipping := false
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skipping {
				long = append(long, chunk...)
				if len(long) > MaxLineLen {
					st.oversized()
					skipping, long = true, nil
				}
			}
			continue
		}
		line := chunk
		if len(long) > 0 {
			line = append(long, chunk...)
			long = long[:0]
		}
		if skipping {
			skipping = false
		} else if len(line) > 0 {
			st.agentLine(bytes.TrimSuffix(line, []byte("\n")))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (st *scanState) agentLine(b []byte) {
	s := st.sum
	s.Lines++
	b = trimCR(b)
	ev, ok := agentCrash(b)
	if !ok {
		if isText(b) {
			s.Other++
		} else {
			s.Unparsed++
		}
		return
	}
	if h, ok := st.p.header(b); ok {
		ev.Format, ev.Time = h.format, h.time(st.p.year)
	} else if t, ok := vobdStamp(b); ok {
		ev.Format, ev.Time = FormatISO, t
	}
	if !ev.Time.IsZero() && !st.since.IsZero() && ev.Time.Before(st.since) {
		s.BeforeSince++
		return
	}
	s.add(&ev)
}

// vobdStamp reads vobd.log's "2016-08-10T10:11:12.345Z: " stamp, whose colon
// keeps it from being an ISO header.
func vobdStamp(b []byte) (time.Time, bool) {
	var buf [40]byte
	n := copy(buf[:], b)
	c := bytes.Index(buf[:n], []byte("Z:"))
	if c < 19 {
		return time.Time{}, false
	}
	buf[c+1] = ' '
	var h header
	if _, ok := parseISO(&h, buf[:n]); !ok {
		return time.Time{}, false
	}
	return h.time(0), true
}
