package collector

import (
	"path"
	"slices"
	"strings"
	"time"
)

// Core dumps are named after the thread or helper that dumped, not the
// agent it belongs to. Which names are whose, from public sources
// (collector/testdata/SOURCES.md):
//
//   - hostd: its cartel's worlds are "hostd", "hostd-worker", "hostd-poll"
//     (`ps` on ESXi 6.x, index id 5131383414); "vix-async-pipe" dumps hostd
//     (VMware KB 2017008, quoted in index id 10892305477: hostd cores named
//     core-vix-async-pipe-…; index id 10937257440: a vix-async-pipe
//     wantCoreDump whose cartel dumped to hostd-worker-zdump).
//   - vpxa: "vpxa", "vpxa-worker", "vpxa-IO", "vpxa-fair", "vpxa-poll" (the
//     same `ps`); vpxa's crash wrote /var/core/vpxa-worker-zdump.000
//     (index id 344607061).
//
// A name in no list (hostdCgiServer, rhttpproxy-work, hbr: their own
// cartels or unclear) is reported as its own process, never guessed.
var agentThreads = map[string]string{
	"hostd": "hostd", "hostd-worker": "hostd", "hostd-poll": "hostd", "vix-async-pipe": "hostd",
	"vpxa": "vpxa", "vpxa-worker": "vpxa", "vpxa-IO": "vpxa", "vpxa-fair": "vpxa", "vpxa-poll": "vpxa",
}

// AgentOf returns the management agent ("hostd", "vpxa") a dumped
// process belongs to, from a thread name ("vpxa-worker"), a core file's
// name ("hostd-worker-zdump.000") or a binary's path
// ("/usr/lib/vmware/vpxa/bin/vpxa"); "" for any other process.
func AgentOf(process string) string {
	name := path.Base(process)
	if i := strings.Index(name, "-zdump"); i > 0 {
		name = name[:i]
	}
	return agentThreads[name]
}

// crashWindow is how far apart the lines of one crash may be: the
// wantCoreDump and UserDump lines of the sources are within a second, the
// vobd and hostd lines of one vpxa crash (index id 344607061) 9 minutes
// apart (its vob counter: 11239267815288us, then 11239800115513us).
const crashWindow = 15 * time.Minute

// maxCrashes bounds Summary.Crashes; a crash past it is still counted in
// its process's dumps and in CrashesDropped.
const maxCrashes = 1000

// Crash is one crash of a process, however many lines report it: the
// wantCoreDump and UserDump lines of one world in vmkernel, and vobd's and
// hostd's words about the same core file (see agentlog.go), count once.
type Crash struct {
	// Agent is AgentOf the names below: "hostd", "vpxa", or "".
	Agent string `json:"agent"`
	// Processes are the names the lines gave (thread, core file), sorted.
	Processes []string `json:"processes"`
	// Time is the first line's; zero when no line's time is known.
	Time time.Time `json:"time,omitzero"`
	// World is the crashed world (0 unknown), CoreFile the core's path
	// ("" unknown): lines that share either are one crash.
	World    uint32 `json:"world,omitempty"`
	CoreFile string `json:"core_file,omitempty"`
	// Lines counts the lines that reported it.
	Lines int `json:"lines"`

	coreDump, userDump bool // a vmkernel wantCoreDump / UserDump line is in
}

// crashOf makes the crash one dump event reports.
func crashOf(ev *Event) Crash {
	c := Crash{Agent: AgentOf(ev.Process), Processes: []string{ev.Process}, Time: ev.Time, World: ev.World, CoreFile: ev.CoreFile, Lines: 1}
	if c.Agent == "" {
		c.Agent = ev.Agent
	}
	if c.Agent == "" && ev.CoreFile != "" {
		c.Agent = AgentOf(ev.CoreFile)
	}
	c.coreDump = ev.Kind == KindCoreDump
	c.userDump = ev.Kind == KindUserDump
	return c
}

// sameCrash reports whether b (later) reports the crash a does.
func sameCrash(a, b *Crash) bool {
	if a.coreDump && b.coreDump || a.userDump && b.userDump {
		return false // one crash writes one of each
	}
	if !a.Time.IsZero() && !b.Time.IsZero() {
		if d := b.Time.Sub(a.Time); d < -crashWindow || d > crashWindow {
			return false
		}
	}
	switch {
	case a.World != 0 && b.World != 0:
		return a.World == b.World
	case a.CoreFile != "" && b.CoreFile != "":
		return a.CoreFile == b.CoreFile
	case a.Time.IsZero() || b.Time.IsZero():
		return false // nothing ties them: two crashes, not one
	}
	// A vmkernel line without its world (wantCoreDump cut short) or an
	// agent log line beside a vmkernel one: the same agent, close in time.
	return a.Agent != "" && a.Agent == b.Agent
}

// join adds b's lines to a.
func (a *Crash) join(b *Crash) {
	a.Lines += b.Lines
	for _, p := range b.Processes {
		if !slices.Contains(a.Processes, p) {
			a.Processes = append(a.Processes, p)
		}
	}
	slices.Sort(a.Processes)
	if a.Agent == "" {
		a.Agent = b.Agent
	}
	if a.Time.IsZero() || !b.Time.IsZero() && b.Time.Before(a.Time) {
		a.Time = b.Time
	}
	if a.World == 0 {
		a.World = b.World
	}
	if a.CoreFile == "" {
		a.CoreFile = b.CoreFile
	}
	a.coreDump = a.coreDump || b.coreDump
	a.userDump = a.userDump || b.userDump
}

// crashLookBack is how many recent crashes a new line is matched against.
const crashLookBack = 8

// addCrash counts c, joining it to a recent crash it reports: one of the
// newest crashLookBack, listed or dropped.
func (s *Summary) addCrash(c Crash) {
	n := 0
	for i := len(s.droppedTail) - 1; i >= 0 && n < crashLookBack; i, n = i-1, n+1 {
		if sameCrash(&s.droppedTail[i], &c) {
			s.droppedTail[i].join(&c)
			return
		}
	}
	for i := len(s.Crashes) - 1; i >= 0 && n < crashLookBack; i, n = i-1, n+1 {
		if sameCrash(&s.Crashes[i], &c) {
			s.Crashes[i].join(&c)
			return
		}
	}
	if len(s.Crashes) < maxCrashes {
		s.Crashes = append(s.Crashes, c)
		return
	}
	s.CrashesDropped++
	if len(s.droppedTail) == crashLookBack {
		copy(s.droppedTail, s.droppedTail[1:])
		s.droppedTail = s.droppedTail[:crashLookBack-1]
	}
	s.droppedTail = append(s.droppedTail, c)
}
