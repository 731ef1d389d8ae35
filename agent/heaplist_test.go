package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// heapPoller polls a simulated host with one watcher, as the daemon does,
// counting the commands it runs.
type heapPoller struct {
	h       *esxsim.Host
	w       *Watcher
	clock   *esxsim.StepClock
	counter *argvCounter
}

// argvCounter counts the commands it runs by their first three words, and
// by all of them.
type argvCounter struct {
	host.Runner
	mu sync.Mutex
	n  map[string]int
	// failNext makes the next command whose words contain it fail.
	failNext string
}

func (c *argvCounter) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	c.mu.Lock()
	c.n[strings.Join(argv[:min(len(argv), 3)], " ")]++
	if len(argv) > 3 {
		c.n[strings.Join(argv, " ")]++
	}
	if c.failNext != "" && strings.Contains(strings.Join(argv, " "), c.failNext) {
		c.failNext = ""
		c.mu.Unlock()
		return host.Result{Argv: argv, ExitCode: -1}, &host.CommandError{Argv: argv, ExitCode: -1, Err: host.ErrTimeout}
	}
	c.mu.Unlock()
	return c.Runner.Run(ctx, timeout, argv...)
}

func newHeapPoller(t *testing.T, scenario string) *heapPoller {
	t.Helper()
	h := newSim(t, scenario)
	p := &heapPoller{h: h, clock: esxsim.NewStepClock(h.Root()),
		counter: &argvCounter{Runner: esxsim.Runner{Root: h.Root()}, n: map[string]int{}}}
	opt := agentOptions(h, filepath.Join(t.TempDir(), "state"), p.clock)
	opt.Runner = p.counter
	w, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	p.w = w
	return p
}

// poll waits one interval and polls; it returns the plan's heap error and
// the full names of the heaps in the poll's metrics. Every heap in the
// metrics must be in the plan too.
func (p *heapPoller) poll(t *testing.T) (heapErr string, sampled []string) {
	t.Helper()
	ctx := context.Background()
	if err := p.clock.Sleep(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := p.w.Check(ctx)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, m := range p.w.heapMetrics {
		sampled = append(sampled, m.Name)
	}
	slices.Sort(sampled)
	var planned []string
	for _, v := range res.Plan.Heaps {
		planned = append(planned, v.Name)
	}
	slices.Sort(planned)
	if res.Plan.HeapErr == "" && !slices.Equal(planned, sampled) {
		t.Fatalf("the plan judges heaps %v, the metrics show %v: want the same", planned, sampled)
	}
	return res.Plan.HeapErr, sampled
}

// count is how many times a command starting with cmd's three words ran.
func (p *heapPoller) count(cmd string) int {
	p.counter.mu.Lock()
	defer p.counter.mu.Unlock()
	return p.counter.n[cmd]
}

// simHeaps is the full names of the simulated host's heaps.
func simHeaps(h *esxsim.Host) []string {
	var names []string
	for _, hp := range h.State().Heaps {
		names = append(names, hp.FullName())
	}
	slices.Sort(names)
	return names
}

// TestHeapListReused: on a steady host the heaps are listed about once a
// minute, not at every 10 s poll; the watched heap's stats are read at
// every poll and another heap's once a minute, and every heap is in the
// metrics of every poll.
func TestHeapListReused(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "healthy")
	const polls = 30 // 5 minutes
	for range polls {
		if herr, got := p.poll(t); herr != "" || !slices.Equal(got, simHeaps(p.h)) {
			t.Fatalf("heap error %q, sampled %v: want no error and %v", herr, got, simHeaps(p.h))
		}
	}
	lists, reads := p.count("vsish -e ls"), p.count("vsish -e cat")
	t.Logf("%d polls: vsish ls %d, vsish cat %d", polls, lists, reads)
	// Once a minute at most: a listing at every poll would be 30.
	if maxLists := polls/6 + 1; lists < 1 || lists > maxLists {
		t.Errorf("vsish ls ran %d times in %d polls, want 1 to %d", lists, polls, maxLists)
	}
	for _, name := range simHeaps(p.h) {
		n := p.count("vsish -e cat /system/heaps/" + name + "/stats")
		if strings.HasPrefix(name, "netGPHeap-") {
			if n != polls {
				t.Errorf("watched %s read %d times in %d polls, want at every poll", name, n, polls)
			}
		} else if n < polls/6 || n > polls/6+1 {
			t.Errorf("%s, not watched, read %d times in %d polls, want once a minute (%d or %d)", name, n, polls, polls/6, polls/6+1)
		}
	}
}

// TestOtherHeapLowReadEveryPoll: a heap that is not watched, once read
// low, is read at every poll, so its level moves at the pace of the
// watched one (HoldPolls polls, not minutes), and back to once a minute
// when it is OK again.
func TestOtherHeapLowReadEveryPoll(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "healthy")
	const other = "vmfs3"
	var full string
	setFree := func(pct int64) {
		p.h.Mutate(func(st *esxsim.State) {
			for i := range st.Heaps {
				if hp := &st.Heaps[i]; hp.Name == other {
					hp.Allocated = hp.Max - hp.Max*pct/100
					full = hp.FullName()
				}
			}
		})
	}
	reads := func() int { return p.count("vsish -e cat /system/heaps/" + full + "/stats") }
	level := func() policy.Level { return p.w.st.Policy.Heaps[full].Level }
	setFree(50)
	p.poll(t)
	setFree(5)
	// Read low within a minute, then at every poll: CRITICAL HoldPolls
	// polls after the first low read.
	polls := 0
	for p.w.st.Policy.Heaps[full].CritPolls == 0 {
		if polls++; polls > 6 {
			t.Fatalf("%s at 5%% free not read low in %d polls", other, polls)
		}
		p.poll(t)
	}
	hold := p.w.opt.Policy.HoldPolls
	before := reads()
	for range hold - 1 {
		p.poll(t)
	}
	if got := reads() - before; got != hold-1 || level() != policy.Crit {
		t.Fatalf("%d polls after the first low read: %s read %d times, level %v; want %d and CRITICAL", hold-1, other, got, level(), hold-1)
	}
	// Back to OK after HoldPolls clear reads, then once a minute.
	setFree(50)
	for range hold {
		p.poll(t)
	}
	if level() != policy.OK {
		t.Fatalf("%s at 50%% free: level %v after %d polls, want OK", other, level(), hold)
	}
	before = reads()
	for range 6 {
		p.poll(t)
	}
	if got := reads() - before; got != 1 {
		t.Errorf("%s OK again: read %d times in 6 polls, want once", other, got)
	}
}

// TestHeapRenamedSampledAtOnce: a heap destroyed, or created again with a
// new address suffix, is judged at the very poll that follows, as with a
// fresh listing: the renamed watched heap is sampled under its new name
// with no heap error, and the vanished one is not reported.
func TestHeapRenamedSampledAtOnce(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "healthy")
	p.poll(t)
	p.poll(t)
	p.h.Mutate(func(st *esxsim.State) {
		var kept []esxsim.Heap
		for _, hp := range st.Heaps {
			switch hp.Name {
			case "netGPHeap":
				hp.Address = "0x410077000000"
			case "netPktHeap":
				continue
			}
			kept = append(kept, hp)
		}
		st.Heaps = kept
	})
	before := p.count("vsish -e cat")
	herr, got := p.poll(t)
	// Each heap is read once: those read before the failure (vmfs3 and
	// dvfilter come first) are not read again from the new listing.
	if reads, most := p.count("vsish -e cat")-before, len(simHeaps(p.h))+1; reads > most {
		t.Errorf("the poll after the change read stats %d times, want %d at most (one failed read, then each heap once)", reads, most)
	}
	if herr != "" || !slices.Equal(got, simHeaps(p.h)) {
		t.Fatalf("the poll after the change: heap error %q, sampled %v: want no error and %v", herr, got, simHeaps(p.h))
	}
	if !slices.Contains(got, "netGPHeap-0x410077000000") {
		t.Fatalf("sampled %v: want the watched heap under its new name", got)
	}
}

// TestHeapNewSampledSoon: a heap created while the listing is reused is
// sampled within heapsListed.
func TestHeapNewSampledSoon(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "healthy")
	p.poll(t)
	p.h.Mutate(func(st *esxsim.State) {
		hp := st.Heaps[0]
		hp.Name, hp.Address = "newHeap", "0x410055000000"
		st.Heaps = append(st.Heaps, hp)
	})
	for i := 0; ; i++ {
		_, got := p.poll(t)
		if slices.Contains(got, "newHeap-0x410055000000") {
			break
		}
		if time.Duration(i+1)*10*time.Second > heapsListed {
			t.Fatalf("after %d polls the new heap is still not sampled (%v)", i+1, got)
		}
	}
}

// TestHeapWatchedAppearsSampledAtOnce: while the listing has no watched
// heap, the poll is UNKNOWN and the heaps are listed again at every poll,
// so a watched heap is sampled at the first poll after it appears.
func TestHeapWatchedAppearsSampledAtOnce(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "healthy")
	var gp esxsim.Heap
	p.h.Mutate(func(st *esxsim.State) {
		st.Heaps = slices.DeleteFunc(st.Heaps, func(hp esxsim.Heap) bool {
			if hp.Name == "netGPHeap" {
				gp = hp
				return true
			}
			return false
		})
	})
	if herr, _ := p.poll(t); herr == "" {
		t.Fatal("no watched heap listed: want a heap error")
	}
	p.h.Mutate(func(st *esxsim.State) { st.Heaps = append(st.Heaps, gp) })
	if herr, got := p.poll(t); herr != "" || !slices.Contains(got, gp.FullName()) {
		t.Fatalf("the poll after netGPHeap appeared: heap error %q, sampled %v: want %s sampled", herr, got, gp.FullName())
	}
}

// savedAt reads the time of the state file's last save ("" when none).
func (p *heapPoller) savedAt(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.w.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Saved string `json:"saved"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file: %v", err)
	}
	return st.Saved
}

// saves polls n times and counts the polls after which the state file
// holds a newer save.
func (p *heapPoller) saves(t *testing.T, n int) int {
	t.Helper()
	saves, last := 0, p.savedAt(t)
	for i := range n {
		p.poll(t)
		got := p.savedAt(t)
		if i == 0 && got == "" {
			t.Fatal("the first poll of a watcher did not save the state (a cron check would never move on)")
		}
		if got != last {
			saves++
			last = got
		}
	}
	return saves
}

// TestStateSavedQuietly: on a quiet host the state file is written about
// once a minute, not at every 10 s poll, and at the first poll.
func TestStateSavedQuietly(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "healthy")
	const polls = 30 // 5 minutes
	got := p.saves(t, polls)
	t.Logf("%d polls, %d saves", polls, got)
	if got < polls/6 || got > polls/6+1 {
		t.Errorf("state saved after %d of %d quiet polls, want about once a minute (%d or %d)", got, polls, polls/6, polls/6+1)
	}
}

// TestStateSavedWhileFlapping: while ports flap the state is saved at
// every poll.
func TestStateSavedWhileFlapping(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "flap-no-leak")
	p.h.Advance(10 * time.Minute)
	const polls = 12
	if got := p.saves(t, polls); got != polls {
		t.Errorf("state saved after %d of %d polls while ports flap, want every one", got, polls)
	}
}

// TestOtherHeapBlindPollReadAgain: a heap that is not watched, read at a
// poll that could not judge (the watched heap's read failed), is read
// again at the next poll rather than a minute later, so going low then is
// counted at once.
func TestOtherHeapBlindPollReadAgain(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "healthy")
	var full string
	p.h.Mutate(func(st *esxsim.State) {
		for i := range st.Heaps {
			if hp := &st.Heaps[i]; hp.Name == "vmfs3" {
				full = hp.FullName()
			}
		}
	})
	reads := func() int { return p.count("vsish -e cat /system/heaps/" + full + "/stats") }
	p.poll(t) // every heap read
	for range 5 {
		p.poll(t)
	}
	// The next poll is a minute after the first: vmfs3 is due. It is low
	// now, but the watched heap's read fails.
	p.h.Mutate(func(st *esxsim.State) {
		for i := range st.Heaps {
			if hp := &st.Heaps[i]; hp.Name == "vmfs3" {
				hp.Allocated = hp.Max - hp.Max*5/100
			}
		}
	})
	p.counter.mu.Lock()
	p.counter.failNext = "/system/heaps/netGPHeap-"
	p.counter.mu.Unlock()
	before := reads()
	if herr, _ := p.poll(t); herr == "" {
		t.Fatal("the watched heap's read failed: want a heap error")
	}
	p.poll(t)
	if got, hs := reads()-before, p.w.st.Policy.Heaps[full]; got != 2 || hs.CritPolls != 1 {
		t.Fatalf("the blind poll and the next: vmfs3 read %d times, %d CRITICAL polls; want read at both, 1", got, hs.CritPolls)
	}
}

// TestOtherHeapRanOutReadAtOnce: the log saying a heap that is not watched
// ran out makes the next poll read it, so the evidence reaches the policy
// (CRITICAL at once) instead of being dropped with the poll's sample.
func TestOtherHeapRanOutReadAtOnce(t *testing.T) {
	t.Parallel()
	p := newHeapPoller(t, "healthy")
	var full string
	for _, hp := range p.h.State().Heaps {
		if hp.Name == "vmfs3" {
			full = hp.FullName()
		}
	}
	reads := func() int { return p.count("vsish -e cat /system/heaps/" + full + "/stats") }
	p.poll(t)
	p.poll(t)
	before := reads()
	if err := p.clock.Sleep(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.h.Allocate("vmfs3", 1<<40) // fails: the log gets "already at its maximum size"
	p.poll(t)
	if got, hs := reads()-before, p.w.st.Policy.Heaps[full]; got != 1 || hs.Level != policy.Crit {
		t.Fatalf("the poll after vmfs3 ran out: read %d times, level %v; want read once and CRITICAL", got, hs.Level)
	}
}
