package collector

import (
	"testing"
	"time"
)

// TestParserYearWrapOutOfOrder: around New Year a December line may come
// after the first January one; it is dated the year before, and the year
// state is not moved (moving it would add a year per swap).
func TestParserYearWrapOutOfOrder(t *testing.T) {
	p := NewParser(2012, time.Time{})
	lines := []string{
		"Dec 31 23:59:58 vmkernel: 7:21:06:31.191 cpu3:33421)NetPort: 1165: disabled port 0x3000007",
		"Jan  1 00:00:00 vmkernel: 7:21:06:33.191 cpu3:33421)NetPort: 1165: disabled port 0x3000007",
		"Dec 31 23:59:59 vmkernel: 7:21:06:32.191 cpu3:33421)NetPort: 1165: disabled port 0x3000007",
		"Jan  1 00:00:02 vmkernel: 7:21:06:35.191 cpu3:33421)NetPort: 1165: disabled port 0x3000007",
	}
	want := []string{"2012-12-31T23:59:58Z", "2013-01-01T00:00:00Z", "2012-12-31T23:59:59Z", "2013-01-01T00:00:02Z"}
	for i, l := range lines {
		ev, err := p.Parse([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.Time.Format(time.RFC3339); got != want[i] {
			t.Errorf("line %d: %s, want %s", i+1, got, want[i])
		}
	}
}
