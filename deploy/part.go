package deploy

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Partial copies are named
//
//	.heapguard.DEADLINE.HOST.RANDOM.part
//
// in the destination folder: DEADLINE is the Unix time (seconds) by which
// the run writing it will have renamed or given it up, HOST the target it
// was sent to (for whoever finds one left behind), RANDOM 16 hex digits.
// The rename of a verified one is the only way a file gets the final name.
//
// Many hosts can share one destination (a datastore on NFS or VMFS
// mounted by all of them), and deploy runs to them at once, from one
// machine or several. A run therefore removes only the partial copies
// that nobody can still be writing: those whose DEADLINE passed more than
// staleGrace ago (the grace covers clocks that differ between the
// machines deploy runs on). The host name plays no part in the rule: the
// same host under two names, or two admins deploying to it at once, must
// not remove each other's copy either. Names of the older form
// .heapguard.RANDOM.part came from runs that removed every partial copy
// and count as stale; other names matching the glob are not deploy's and
// are left alone.
const (
	tempPrefix = ".heapguard."
	tempSuffix = ".part"
	staleGrace = 15 * time.Minute
	// removeGrace bounds the removal of a run's own partial copy after
	// it failed (its time may be up): a dead connection must not hold
	// the host's result long past its timeout.
	removeGrace = 5 * time.Second
	// partHostMax caps the HOST part of a name.
	partHostMax = 64
)

// partName is the name of a partial copy sent to host that will be
// renamed or given up by deadline.
func partName(deadline time.Time, host, random string) string {
	return tempPrefix + strconv.FormatInt(deadline.Unix(), 10) + "." + partHost(host) + "." + random + tempSuffix
}

// partHost keeps host's letters, digits, '-' and '_' and '.', each other
// character written '-' (an IPv6 address's colons, a zone's %), at most
// partHostMax of them.
func partHost(host string) string {
	b := []byte(host)
	if len(b) > partHostMax {
		b = b[:partHostMax]
	}
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// partState is what a name in the destination folder is to the stale
// rule.
type partState int

const (
	partForeign partState = iota // not a partial copy deploy makes: left alone
	partLegacy                   // .heapguard.RANDOM.part: stale
	partDated                    // .heapguard.DEADLINE.HOST.RANDOM.part
)

// parsePartName tells what name is and, for a dated one, its deadline.
func parsePartName(name string) (partState, time.Time) {
	mid, ok := strings.CutPrefix(name, tempPrefix)
	if !ok {
		return partForeign, time.Time{}
	}
	if mid, ok = strings.CutSuffix(mid, tempSuffix); !ok || strings.ContainsAny(mid, "/\x00\n\r") {
		return partForeign, time.Time{}
	}
	if isHex(mid, 16) {
		return partLegacy, time.Time{}
	}
	first, rest, ok := strings.Cut(mid, ".")
	if !ok {
		return partForeign, time.Time{}
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 1 || !isHex(rest[i+1:], 16) {
		return partForeign, time.Time{}
	}
	if first == "" || len(first) > 12 || strings.Trim(first, "0123456789") != "" {
		return partForeign, time.Time{}
	}
	sec, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return partForeign, time.Time{}
	}
	return partDated, time.Unix(sec, 0)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// stalePart: name is a partial copy nobody can still be writing at now.
func stalePart(name string, now time.Time) bool {
	switch state, deadline := parsePartName(name); state {
	case partLegacy:
		return true
	case partDated:
		return now.Sub(deadline) > staleGrace
	}
	return false
}

// staleParts are the names in listing (one a line) that stalePart picks.
func staleParts(listing string, now time.Time) []string {
	var names []string
	for _, n := range strings.Split(listing, "\n") {
		if stalePart(n, now) {
			names = append(names, n)
		}
	}
	return names
}

// partDeadline is when a copy started now will have been renamed or given
// up: ctx's deadline (the host's timeout), or without one the longest the
// remaining steps may take (sending, reading back, chmod, rename).
func partDeadline(ctx context.Context, cfg *Config, now time.Time) time.Time {
	d := now.Add(2*cfg.copyTimeout() + 2*cfg.commandTimeout() + removeGrace)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		d = dl.Add(removeGrace)
	}
	return d
}

// removeStaleParts removes from dest the partial copies stalePart picks.
func removeStaleParts(ctx context.Context, c *Client, dest string, now time.Time) error {
	var out bytes.Buffer
	if err := c.pipeScript(ctx, c.cfg.commandTimeout(), scriptListParts, nil, &limitedBuffer{b: &out, n: 1 << 20}, dest); err != nil {
		return fmt.Errorf("list partial copies in %s: %w", dest, err)
	}
	for _, name := range staleParts(out.String(), now) {
		p := path.Join(dest, name)
		if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptRemove, p); err != nil {
			return fmt.Errorf("remove stale partial copy %s: %w", p, err)
		}
	}
	return nil
}
