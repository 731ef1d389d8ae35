// Package rssfloor holds the programs of scripts/bench-rss-floor.sh: the
// resident size a Go program doing a poll's least work (start a command,
// write a JSON snapshot) has before any of heapguard's own code, with and
// without zap, and heapguard's daemon alone without its other commands.
// They tell which part of the daemon's RSS its code can still change.
package rssfloor

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"
)

// Tune sets the runtime as `heapguard run` does (cmd/heapguard daemonRuntime).
func Tune() {
	debug.SetGCPercent(25)
	runtime.GOMAXPROCS(1)
}

// Poll runs, every second until the process is killed: the command true,
// a JSON snapshot written over a file of a temporary folder, then log.
// The folder outlives the process: the caller's TMPDIR decides where.
func Poll(log func(n int)) {
	dir, err := os.MkdirTemp("", "rssfloor")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for n := 0; ; n++ {
		out, err := exec.Command("true").Output()
		b, _ := json.Marshal(struct {
			Time   time.Time `json:"time"`
			Poll   int       `json:"poll"`
			Output string    `json:"output"`
			Failed bool      `json:"failed"`
		}{time.Now(), n, string(out), err != nil})
		tmp := filepath.Join(dir, "metrics.json.tmp")
		if err := os.WriteFile(tmp, b, 0o600); err == nil {
			os.Rename(tmp, filepath.Join(dir, "metrics.json"))
		}
		log(n)
		time.Sleep(time.Second)
	}
}
