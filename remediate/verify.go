package remediate

import (
	"context"
	"errors"
	"fmt"

	"github.com/heapguard/heapguard/policy"
)

// heapFloor says in words what a verification compares the heap with.
func heapFloor(a policy.Action) string {
	if a.Heap == nil {
		return "the first read"
	}
	return fmt.Sprintf("%.1f%% free of max (%s at the decision) nor falling", a.Heap.PercentFreeOfMax, a.Heap.Name)
}

// verify checks that the host recovered: the agent's status exits 0
// (waiting up to AgentWait for it), and the heap has stopped falling: two
// reads VerifyInterval of host time apart, the second not lower than the
// first nor than the figure the decision was taken on.
func (s *session) verify(ctx context.Context, a policy.Action) error {
	agent := verifyAgent(a)
	script, err := initScript(s.live.Layout, agent)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	agentErr := s.waitRunning(ctx, agent, script)
	if a.AgentOnly {
		s.note("heap not checked: the heaps could not be read when the plan was made")
		if agentErr != nil {
			return fmt.Errorf("verify: %w", agentErr)
		}
		return nil
	}
	heapErr := s.verifyHeap(ctx, a)
	if err := errors.Join(agentErr, heapErr); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	return nil
}

func (s *session) verifyHeap(ctx context.Context, a policy.Action) error {
	if s.live.HeapCheck == nil {
		// Never report a recovery that was not measured.
		return errors.New("heap not checked: no heap reader configured")
	}
	first, err := s.live.HeapCheck(ctx)
	if err != nil {
		return fmt.Errorf("read heap: %w", err)
	}
	interval := orDefault(s.live.VerifyInterval, DefaultVerifyInterval)
	if err := s.clock.Sleep(ctx, interval); err != nil {
		return fmt.Errorf("wait between heap reads: %w", err)
	}
	second, err := s.live.HeapCheck(ctx)
	if err != nil {
		return fmt.Errorf("read heap: %w", err)
	}
	s.note("heap %.2f%% then %.2f%% free of max, %s apart", first, second, interval)
	if second < first {
		return fmt.Errorf("heap still falling: %.2f%% then %.2f%% free of max in %s", first, second, interval)
	}
	if a.Heap != nil && second < a.Heap.PercentFreeOfMax {
		return fmt.Errorf("heap at %.2f%% free of max, below the %.2f%% the decision was taken on", second, a.Heap.PercentFreeOfMax)
	}
	return nil
}
