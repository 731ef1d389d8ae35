package remediate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// ApplyOptions wire Apply to its executor, journal, guards and clock.
type ApplyOptions struct {
	Executor Executor
	Journal  *Journal
	Guards   *Guards
	Clock    host.Clock
	// DryRun runs nothing and changes no state: Executor must be a
	// *DryRun, and the guards are consulted on an in-memory copy so the
	// journal says what they would answer at each step.
	DryRun bool
	// PlanID groups the plan's journal entries.
	PlanID string
	// Summary is the plan in words, for the decision entry.
	Summary string
}

// Apply carries out a plan's actions in order.
//
// It journals the decision first, then for each action: a step the plan
// marks Skipped is journaled as skipped; the guards are checked, and a
// refusal is journaled as skipped with the guard's reason; otherwise the
// start is journaled, the guards record it (spending the power-off budget
// or starting the agent cooldown, persisted before any command runs), the
// executor runs it, and the result is journaled and recorded.
//
// Consecutive power-offs run side by side, so that a plan waits for one
// graceful shutdown, not one after another: all are begun in plan order
// as above (guards checked, start journaled, budget spent), then their
// commands start together; each result is journaled as it comes; the next
// step (the agent restart) starts only when every one has ended. One
// failing does not stop the others. A power-off's budget is therefore
// checked before the earlier ones of its plan have ended: one of them
// refunded later does not let it through.
//
// A refused or failed power-off does not cancel the plan's later steps:
// an agent restart is guarded on its own, and it is what makes the host
// manageable again even when the heap was not given back; the
// verification then says whether the host recovered. A failed power-off,
// restart or verification extends the guards' failure streak, once per
// plan, and the breaker is judged as it stood when the plan began; a
// verification only counts when an acting step of this plan ran. A step
// that failed without running a mutating command costs no budget.
//
// When the journal cannot be written, no further step begins, the steps
// already begun run and end, and the error wraps ErrJournal. When ctx is cancelled
// (SIGTERM), the running actions finish, bounded by their commands'
// timeouts and the shutdown wait, so their results are journaled; no
// further action starts, the rest are journaled as skipped, and ctx.Err()
// is returned.
func Apply(ctx context.Context, actions []policy.Action, opt ApplyOptions) ([]Outcome, error) {
	if opt.Executor == nil || opt.Journal == nil || opt.Guards == nil {
		return nil, errors.New("apply: executor, journal and guards are required")
	}
	if opt.Clock == nil {
		opt.Clock = host.SystemClock{}
	}
	guards := opt.Guards
	if opt.DryRun {
		if _, ok := opt.Executor.(interface{ dryRun() }); !ok {
			return nil, fmt.Errorf("apply: dry run needs the dry-run executor, not %T", opt.Executor)
		}
		guards = guards.dryCopy()
	}
	j := opt.Journal
	if err := j.Decide(opt.PlanID, opt.Summary, actions, opt.DryRun); err != nil {
		return nil, err
	}
	guards.BeginPlan()
	defer guards.EndPlan()

	outcomes := make([]Outcome, 0, len(actions))
	pr := progress{}
	for i := 0; i < len(actions); {
		if err := ctx.Err(); err != nil {
			// Journal what will not be done; a failure here changes nothing more.
			for _, rest := range actions[i:] {
				e := entryFor(opt.PlanID, rest, opt.DryRun, ResultSkipped)
				e.Error = "not started: heapguard is stopping (" + err.Error() + ")"
				if j.Append(e) != nil {
					break
				}
			}
			return outcomes, err
		}
		outs, err := applyBatch(ctx, actions[i:i+batchLen(actions[i:])], opt, guards, &pr)
		outcomes = append(outcomes, outs...)
		if err != nil {
			return outcomes, err
		}
		i += len(outs)
	}
	return outcomes, ctx.Err()
}

// batchLen is how many of actions, from the first, run side by side: the
// consecutive power-offs, each of another VM (a VM named twice waits for
// the first of its steps); any other step runs alone.
func batchLen(actions []policy.Action) int {
	vms := map[string]bool{}
	for i, a := range actions {
		if a.Kind != policy.ActPowerOff || vms[a.Target+"\x00"+a.VMID] {
			return max(i, 1)
		}
		vms[a.Target+"\x00"+a.VMID] = true
	}
	return len(actions)
}

// progress is what Apply has done of a plan so far.
type progress struct {
	acted       bool // an acting step ran
	offsPlanned int  // power-offs the plan meant to run, so far
	offsDone    int  // those that ran and succeeded
}

// applyBatch begins the steps of batch in order, then runs those it began
// side by side; it returns when all have ended, with the outcomes of the
// steps begun (fewer than batch when ctx was cancelled or an error
// stopped it). An error means Apply must stop.
func applyBatch(ctx context.Context, batch []policy.Action, opt ApplyOptions, guards *Guards, pr *progress) ([]Outcome, error) {
	outs := make([]Outcome, 0, len(batch))
	finished := make([]Outcome, len(batch))
	errs := make([]error, len(batch)+1)
	type begun struct {
		i     int
		a     policy.Action
		acted bool
	}
	var toRun []begun
	for i, a := range batch {
		if ctx.Err() != nil {
			break // Apply journals the rest as skipped
		}
		o, run, err := begin(a, opt, guards, pr)
		outs = append(outs, o)
		if err != nil {
			errs[len(batch)] = err
			break
		}
		if run {
			toRun = append(toRun, begun{i, o.Action, pr.acted}) // acted read now: the next begin writes it
		}
	}
	if berr := errs[len(batch)]; berr != nil {
		// A later begin failed (the journal or the guards cannot be
		// written): the begun steps do not run either, since their
		// results could not be kept. They changed nothing, so they
		// cost no budget.
		for _, b := range toRun {
			finished[b.i] = notRun(b.a, opt, guards, berr)
		}
		toRun = nil
	}
	// Every step is begun before any runs, so a plan's starts stand
	// together in the journal, in plan order, however fast a step ends.
	var wg sync.WaitGroup
	for _, b := range toRun {
		wg.Go(func() { finished[b.i], errs[b.i] = finish(ctx, b.a, opt, guards, b.acted) })
	}
	wg.Wait()
	for i := range outs {
		if outs[i].Result == ResultStarted {
			outs[i] = finished[i]
			if outs[i].Action.Kind == policy.ActPowerOff && (outs[i].Result == ResultOK || outs[i].Result == ResultDryRun) {
				pr.offsDone++
			}
		}
	}
	return outs, errors.Join(errs...)
}

// begin does what comes before a step's commands: the skip, the guards'
// check, the start journaled and recorded. run says whether the step must
// now be run (finish); then o.Result is ResultStarted and o.Action is the
// action as journaled. An error means Apply must stop.
func begin(a policy.Action, opt ApplyOptions, guards *Guards, pr *progress) (o Outcome, run bool, err error) {
	j, clock := opt.Journal, opt.Clock
	if a.Kind == policy.ActPowerOff && a.Skipped == "" {
		pr.offsPlanned++
	}
	if a.Kind == policy.ActRestartAgent && pr.offsDone < pr.offsPlanned {
		// The plan's reason counts on the power-offs before it; say
		// which did not happen (refused by a guard, or failed).
		a.Reason += fmt.Sprintf(" [%d of %d planned power-offs did not happen]", pr.offsPlanned-pr.offsDone, pr.offsPlanned)
	}
	skip := func(why string) (Outcome, bool, error) {
		o := Outcome{Action: a, Result: ResultSkipped, Err: why}
		e := entryFor(opt.PlanID, a, opt.DryRun, ResultSkipped)
		e.Error = why
		return o, false, j.Append(e)
	}
	if a.Skipped != "" {
		return skip(a.Skipped)
	}
	if err := guards.Check(a, clock.Now()); err != nil {
		return skip(err.Error())
	}
	// The journal and the guards hold the same start time, so that the
	// journal can later restore what a lost guards file spent.
	startedAt := clock.Now().UTC()
	started := entryFor(opt.PlanID, a, opt.DryRun, ResultStarted)
	started.Time = startedAt.Format(time.RFC3339Nano)
	if err := j.Append(started); err != nil {
		return Outcome{Action: a, Result: ResultSkipped, Err: err.Error()}, false, err
	}
	if err := guards.Record(a, Outcome{Action: a, Result: ResultStarted}, startedAt); err != nil {
		err = fmt.Errorf("%s %s not run: %w", a.Kind, a.Target, err)
		o := Outcome{Action: a, Result: ResultFailed, Err: err.Error()}
		e := entryFor(opt.PlanID, a, opt.DryRun, ResultFailed)
		e.Error = o.Err
		if jerr := j.Append(e); jerr != nil {
			return o, false, errors.Join(err, jerr)
		}
		return o, false, err
	}
	if acting(a.Kind) {
		pr.acted = true
	}
	return Outcome{Action: a, Result: ResultStarted}, true, nil
}

// notRun ends a begun step whose commands were never run: failed, with
// nothing changed on the host, and so refunded by the guards. The journal
// is tried (it may be what failed); the start entry left open otherwise is
// resolved against the host at the next start.
func notRun(a policy.Action, opt ApplyOptions, guards *Guards, why error) Outcome {
	o := Outcome{Action: a, Result: ResultFailed, Err: fmt.Sprintf("not run: %v", why)}
	e := entryFor(opt.PlanID, a, opt.DryRun, o.Result)
	e.Error = o.Err
	opt.Journal.Append(e)
	guards.Record(a, o, opt.Clock.Now())
	return o
}

// finish runs a begun step, then journals and records its result; acted
// says whether an acting step of the plan ran. It may run beside other
// steps: the journal and the guards lock. An error means Apply must stop.
func finish(ctx context.Context, a policy.Action, opt ApplyOptions, guards *Guards, acted bool) (Outcome, error) {
	j, clock := opt.Journal, opt.Clock
	// The action finishes even when heapguard is told to stop, so that its
	// result reaches the journal; its commands have their own timeouts.
	o := opt.Executor.Execute(context.WithoutCancel(ctx), a)
	o.Action = a

	e := entryFor(opt.PlanID, a, opt.DryRun, o.Result)
	e.Error, e.Output, e.ElapsedMS, e.Mutated = o.Err, o.Output, o.Elapsed.Milliseconds(), o.Mutated
	jerr := j.Append(e)
	// Record even when the journal failed: the guards must know.
	rec := o
	if opt.DryRun && o.Result == ResultDryRun {
		rec.Result = ResultOK // the copy of the guards assumes success
	}
	var gerr error
	// A verification after nothing was done only observes; its "not
	// recovered" must not feed the breaker.
	if a.Kind != policy.ActVerify || acted {
		gerr = guards.Record(a, rec, clock.Now())
	}
	return o, errors.Join(jerr, gerr)
}
