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
)

// heapPoller polls a simulated host with one watcher, as the daemon does,
// counting the commands it runs.
type heapPoller struct {
	h       *esxsim.Host
	w       *Watcher
	clock   *esxsim.StepClock
	counter *argvCounter
}

// argvCounter counts the commands it runs by their first three words.
type argvCounter struct {
	host.Runner
	mu sync.Mutex
	n  map[string]int
}

func (c *argvCounter) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	c.mu.Lock()
	c.n[strings.Join(argv[:min(len(argv), 3)], " ")]++
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
// the full names of the heaps the poll sampled.
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
// minute, not at every 10 s poll, and every heap's stats are read at
// every poll.
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
	if want := polls * len(simHeaps(p.h)); reads != want {
		t.Errorf("vsish cat ran %d times in %d polls, want %d: the stats must be read at every poll", reads, polls, want)
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
