// Package agent decides: it holds the policy (thresholds, hysteresis,
// holding for N polls, prediction) that turns observations into a Plan, the
// loop that drives it, the modes (run, check, report) and their persisted
// state (log position, trends, budgets).
//
// It must not run host commands itself; it asks package remediate.
package agent
