package heap

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Point is one observation of a heap in host time. The trend is fitted on
// Allocated ("current bytes allocated"): it is printed by every vsish
// version we have seen, and exhaustion is Allocated reaching Max.
type Point struct {
	T         time.Time `json:"t"`
	Allocated int64     `json:"allocated"`
	Max       int64     `json:"max"`
}

// PointFrom makes a Point of a sample taken at host time t. Without
// "current bytes allocated" it uses maximum heap size - maximum bytes
// available.
func PointFrom(t time.Time, s Sample) (Point, error) {
	max, ok := s.MaxSize()
	if !ok || max <= 0 {
		return Point{}, fmt.Errorf("trend point for %s: no maximum heap size: %w", s.Name, ErrTruncated)
	}
	alloc, ok := s.Allocated()
	if !ok {
		avail, ok := s.MaxAvailable()
		if !ok {
			return Point{}, fmt.Errorf("trend point for %s: no allocated or available bytes: %w", s.Name, ErrTruncated)
		}
		alloc = max - avail
	}
	return Point{T: t, Allocated: alloc, Max: max}, nil
}

// TrendConfig bounds the window and says when a fit is meaningful. Zero
// fields take the defaults.
type TrendConfig struct {
	// MaxPoints keeps only the most recent points (default 60).
	MaxPoints int `json:"max_points,omitempty"`
	// MaxAge drops points older than this before the newest (default 15 min).
	MaxAge time.Duration `json:"max_age,omitempty"`
	// MinPoints is the fewest points a prediction needs (default 3, at
	// least 3), and one more than the fewest spans of RateSpan.
	MinPoints int `json:"min_points,omitempty"`
	// ResetDrop: an allocation more than this fraction of the maximum heap
	// size below the window's highest starts a new window (default 0.03).
	// Powering off the leaking VMs gives back a few percent (4 % of max in
	// the field), possibly over several polls, and a line through that
	// cliff would go on predicting the stopped leak; 3 % is over five
	// minutes of the seed incident's leak, well above a heap's churn.
	ResetDrop float64 `json:"reset_drop,omitempty"`
	// RateSpan is the shortest span over which growth is judged (default
	// 1 min): a leak grows in every minute, a one-off allocation in one,
	// and one minute holds six of the daemon's polls or one of cron's.
	RateSpan time.Duration `json:"rate_span,omitempty"`
}

func (c TrendConfig) withDefaults() TrendConfig {
	if c.MaxPoints <= 0 {
		c.MaxPoints = 60
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 15 * time.Minute
	}
	if c.MinPoints < 3 {
		c.MinPoints = 3
	}
	if !(c.ResetDrop > 0) {
		c.ResetDrop = 0.03
	}
	if c.RateSpan <= 0 {
		c.RateSpan = time.Minute
	}
	return c
}

// Series is the bounded window of recent points of one heap. It is plain
// data so that `heapguard check`, run from cron, can save it as JSON
// between runs.
type Series struct {
	// Heap is the base name; FullName the last full name seen (a new
	// address means the heap was re-created, which resets the window).
	Heap     string  `json:"heap"`
	FullName string  `json:"full_name,omitempty"`
	Points   []Point `json:"points"`
	// Resets counts the windows thrown away; LastReset says why the last was.
	Resets    int    `json:"resets,omitempty"`
	LastReset string `json:"last_reset,omitempty"`
}

// Add appends a point, first starting a new window when the heap was
// re-created (full name or maximum size changed), host time went
// backwards, or allocation fell more than ResetDrop below the window's
// highest, then trims the window. It returns the reason when it reset the
// window, "" otherwise.
func (s *Series) Add(cfg TrendConfig, fullName string, p Point) (reset string) {
	cfg = cfg.withDefaults()
	if n := len(s.Points); n > 0 {
		last := s.Points[n-1]
		peak, ok := s.peak(cfg.MaxPoints-1, p.T.Add(-cfg.MaxAge))
		// In float64: saved points are not trusted to be small.
		drop := float64(peak) - float64(p.Allocated)
		switch {
		case fullName != "" && s.FullName != "" && fullName != s.FullName:
			reset = fmt.Sprintf("heap re-created as %s", fullName)
		case p.Max != last.Max:
			reset = fmt.Sprintf("maximum size changed from %d to %d", last.Max, p.Max)
		case p.T.Before(last.T):
			reset = "host time went backwards"
		case ok && drop > cfg.ResetDrop*float64(p.Max):
			reset = fmt.Sprintf("allocation dropped from %d to %d (%.1f %% of max)", peak, p.Allocated, 100*drop/float64(p.Max))
		}
	}
	if reset != "" {
		s.Points = s.Points[:0]
		s.Resets++
		s.LastReset = reset
	}
	if fullName != "" {
		s.FullName = fullName
	}
	s.Points = append(s.Points, p)
	cut := 0
	if over := len(s.Points) - cfg.MaxPoints; over > 0 {
		cut = over
	}
	oldest := p.T.Add(-cfg.MaxAge)
	for cut < len(s.Points)-1 && s.Points[cut].T.Before(oldest) {
		cut++
	}
	if cut > 0 {
		s.Points = append(s.Points[:0], s.Points[cut:]...)
	}
	return reset
}

// peak is the highest allocation among the last n points from since on:
// the ones the next point's window keeps, so a point about to be trimmed
// does not restart the window.
func (s *Series) peak(n int, since time.Time) (int64, bool) {
	var hi int64
	ok := false
	for _, q := range s.Points[max(len(s.Points)-n, 0):] {
		if !q.T.Before(since) && (!ok || q.Allocated > hi) {
			hi, ok = q.Allocated, true
		}
	}
	return hi, ok
}

// Trend is the least-squares line through a Series' window, and a
// prediction when the growth is sustained.
type Trend struct {
	Heap   string `json:"heap"`
	Points int    `json:"points"`
	// Span is the host time between the first and last point.
	Span time.Duration `json:"span_ns"`
	// BytesPerSecond is the slope of allocated bytes over host time
	// (positive: leaking). Zero when there are fewer than 2 points or no
	// time between them.
	BytesPerSecond float64 `json:"bytes_per_second"`
	Last           Point   `json:"last"`
	// Predicted is true when the growth is sustained (at least MinPoints
	// points, a positive slope, and see sustained); only then are Rate,
	// TimeToExhaustion and ExhaustionAt set. Otherwise NoPrediction says why.
	Predicted bool `json:"predicted"`
	// Rate is the growth TimeToExhaustion assumes, in bytes per second: the
	// smaller of BytesPerSecond and the median span rate, so that a jump
	// inside the window, which pulls the slope up, does not shorten it.
	Rate float64 `json:"rate_bytes_per_second,omitempty"`
	// TimeToExhaustion is (Max - last allocated) / Rate, from the last
	// point's time: the observed last value, not the fitted one, so a
	// recent jump is not averaged away. Zero when already exhausted.
	TimeToExhaustion time.Duration `json:"time_to_exhaustion_ns,omitempty"`
	ExhaustionAt     time.Time     `json:"exhaustion_at,omitzero"`
	NoPrediction     string        `json:"no_prediction,omitempty"`
}

// Trend fits the window. Times are taken relative to the first point, in
// seconds, and sums are centred, so the arithmetic is exact for small
// integer data.
func (s *Series) Trend(cfg TrendConfig) Trend {
	cfg = cfg.withDefaults()
	t := Trend{Heap: s.Heap, Points: len(s.Points)}
	if len(s.Points) == 0 {
		t.NoPrediction = "no samples"
		return t
	}
	first, last := s.Points[0], s.Points[len(s.Points)-1]
	t.Last, t.Span = last, last.T.Sub(first.T)
	slope, ok := fit(s.Points)
	if ok {
		t.BytesPerSecond = slope
	}
	switch {
	case len(s.Points) < cfg.MinPoints:
		t.NoPrediction = fmt.Sprintf("%d samples, need %d", len(s.Points), cfg.MinPoints)
		return t
	case !ok:
		t.NoPrediction = "all samples at the same time"
		return t
	case slope <= 0:
		t.NoPrediction = "allocation not growing"
		return t
	}
	median, why := sustained(s.Points, cfg.RateSpan, cfg.MinPoints-1)
	if why != "" {
		t.NoPrediction = why
		return t
	}
	t.Predicted = true
	t.Rate = min(slope, median)
	left := float64(last.Max) - float64(last.Allocated)
	if left < 0 {
		left = 0
	}
	// float64(1<<63-1) rounds up to 2^63, which a Duration cannot hold:
	// from there on the time is the longest Duration.
	const maxSecs = float64(1<<63-1) / float64(time.Second)
	if secs := left / t.Rate; secs < maxSecs {
		t.TimeToExhaustion = time.Duration(secs * float64(time.Second))
	} else {
		t.TimeToExhaustion = math.MaxInt64
	}
	t.ExhaustionAt = last.T.Add(t.TimeToExhaustion)
	return t
}

// sustained says whether the growth through ps (in time order) is a rate
// rather than a few steps or churn, and returns the median rate of its
// spans in bytes per second; why is "" when it is sustained.
func sustained(ps []Point, span time.Duration, need int) (median float64, why string) {
	// A few polls after a start or a reset, noise is as large as the growth.
	rates := spanRates(ps, span)
	n := len(rates)
	if n < need {
		return 0, fmt.Sprintf("growth not sustained yet: %d of %d spans of %v", n, need, span)
	}
	// Growth in more than half of the spans: a one-off jump lands in one
	// (two when it straddles them), so a few jumps leave the median at 0.
	newest := rates[0]
	slices.Sort(rates)
	median = (rates[(n-1)/2] + rates[n/2]) / 2
	if !(rates[(n-1)/2] > 0) {
		return median, fmt.Sprintf("growth not sustained: median rate %.0f B/s over %d spans", median, n)
	}
	// A heap giving memory back is not heading for exhaustion now.
	if !(newest > 0) {
		return median, fmt.Sprintf("growth not sustained: %.0f B/s over the newest span", newest)
	}
	// A sawtooth's spans rise more often than they fall, but it comes back
	// to the same levels: the last third must be above the first.
	first, last := ps[0].T, ps[len(ps)-1].T
	third := last.Sub(first) / 3
	var hiEarly, loLate int64
	seenEarly, seenLate := false, false
	for _, p := range ps {
		if p.T.Sub(first) <= third && (!seenEarly || p.Allocated > hiEarly) {
			hiEarly, seenEarly = p.Allocated, true
		}
		if last.Sub(p.T) <= third && (!seenLate || p.Allocated < loLate) {
			loLate, seenLate = p.Allocated, true
		}
	}
	if seenEarly && seenLate && loLate <= hiEarly {
		return median, fmt.Sprintf("growth not sustained: lowest of the last third %d not above highest of the first third %d", loLate, hiEarly)
	}
	return median, ""
}

// spanRates cuts ps, newest first, into consecutive spans of at least d
// and returns each span's allocation rate in bytes per second. Points
// older than the oldest full span are left out, so that spans of regular
// polls are of one length and a staircase leak shows one step in each.
func spanRates(ps []Point, d time.Duration) []float64 {
	var rates []float64
	for end := len(ps) - 1; end > 0; {
		j := end - 1
		for j >= 0 && ps[end].T.Sub(ps[j].T) < d {
			j--
		}
		if j < 0 {
			break
		}
		rates = append(rates, rate(ps[j], ps[end]))
		end = j
	}
	return rates
}

// rate is the allocation rate from a to b in bytes per second; b is at
// least a nanosecond after a.
func rate(a, b Point) float64 {
	return (float64(b.Allocated) - float64(a.Allocated)) / b.T.Sub(a.T).Seconds()
}

// fit returns the least-squares slope of Allocated over time in bytes per
// second; ok is false with fewer than two distinct times.
func fit(ps []Point) (float64, bool) {
	if len(ps) < 2 {
		return 0, false
	}
	t0, a0 := ps[0].T, ps[0].Allocated
	n := float64(len(ps))
	var sx, sy float64
	for _, p := range ps {
		sx += p.T.Sub(t0).Seconds()
		sy += float64(p.Allocated - a0)
	}
	mx, my := sx/n, sy/n
	var sxx, sxy float64
	for _, p := range ps {
		dx := p.T.Sub(t0).Seconds() - mx
		dy := float64(p.Allocated-a0) - my
		sxx += dx * dx
		sxy += dx * dy
	}
	if sxx == 0 {
		return 0, false
	}
	return sxy / sxx, true
}

// Trends holds one Series per heap base name: the state `heapguard check`
// saves between runs.
type Trends struct {
	Config TrendConfig        `json:"config"`
	Heaps  map[string]*Series `json:"heaps"`
}

// Observe adds a sample taken at host time t and returns the heap's
// updated trend.
func (ts *Trends) Observe(t time.Time, s Sample) (Trend, error) {
	p, err := PointFrom(t, s)
	if err != nil {
		return Trend{}, err
	}
	if ts.Heaps == nil {
		ts.Heaps = map[string]*Series{}
	}
	name := s.Name
	if name == "" {
		name = BaseName(s.FullName)
	}
	ser := ts.Heaps[name]
	if ser == nil {
		ser = &Series{Heap: name}
		ts.Heaps[name] = ser
	}
	ser.Add(ts.Config, s.FullName, p)
	return ser.Trend(ts.Config), nil
}
