package esxsim

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
)

// logLine is one vmkernel line before formatting.
type logLine struct {
	At    time.Time
	CPU   int
	World int
	OpID  string // 8.x: " opID=55d67df2" after the world, for lines caused by a command
	Warn  bool   // a WARNING line: "Wa(180) vmkwarning:" on 8.x, also in vmkwarning.log
	Msg   string // what follows "cpuN:W)"
}

// FormatLogLine renders a line in the version's format:
//
//	4.x/5.0: "Jul 26 01:26:46 vmkernel: 7:21:06:31.191 cpu3:33421)msg" (uptime since boot)
//	5.1-7.x: "2017-09-30T17:27:30.509Z cpu1:65597)msg"
//	8.x+:    "2023-12-07T05:04:55.159Z In(182) vmkernel: cpu10:2099084 opID=a9f5cca4)msg"
//	         "2023-12-07T05:07:09.945Z Wa(180) vmkwarning: cpu3:2097803)WARNING: msg"
func formatLogLine(v Version, boot time.Time, l logLine) string {
	at := l.At.UTC()
	switch v.Log {
	case LogSyslog4x:
		up := max(at.Sub(boot), 0)
		days := int(up / (24 * time.Hour))
		up -= time.Duration(days) * 24 * time.Hour
		ms := up.Milliseconds()
		return fmt.Sprintf("%s vmkernel: %d:%02d:%02d:%02d.%03d cpu%d:%d)%s",
			at.Format("Jan _2 15:04:05"), days, ms/3600000, ms/60000%60, ms/1000%60, ms%1000, l.CPU, l.World, l.Msg)
	case LogISO8x:
		sev := "In(182) vmkernel"
		if l.Warn {
			sev = "Wa(180) vmkwarning"
		}
		op := ""
		if l.OpID != "" {
			op = " opID=" + l.OpID
		}
		return fmt.Sprintf("%s %s: cpu%d:%d%s)%s", at.Format("2006-01-02T15:04:05.000Z"), sev, l.CPU, l.World, op, l.Msg)
	default:
		return fmt.Sprintf("%s cpu%d:%d)%s", at.Format("2006-01-02T15:04:05.000Z"), l.CPU, l.World, l.Msg)
	}
}

// writeLog appends lines to the vmkernel log (and, on 8.x, the warning
// lines to vmkwarning.log too), rotating each file as soon as it reaches
// the scenario's size, as vmsyslogd does while it writes.
func writeLog(root string, st *State, lines []logLine) error {
	if len(lines) == 0 || st.LogStalled {
		return nil
	}
	v := st.Ver()
	var main, warn []string
	for _, l := range lines {
		s := formatLogLine(v, st.Boot, l) + "\n"
		main = append(main, s)
		if l.Warn && v.WarningLogPath() != "" {
			warn = append(warn, s)
		}
	}
	if err := appendRotating(host.Path(root, v.LogPath()), main, st.Scenario.Log); err != nil {
		return err
	}
	if len(warn) > 0 {
		return appendRotating(host.Path(root, v.WarningLogPath()), warn, st.Scenario.Log)
	}
	return nil
}

func appendRotating(p string, lines []string, spec LogSpec) error {
	var size int64
	if fi, err := os.Stat(p); err == nil {
		size = fi.Size()
	}
	var chunk strings.Builder
	for _, l := range lines {
		chunk.WriteString(l)
		size += int64(len(l))
		if size >= spec.RotateBytes {
			if err := appendFile(p, chunk.String()); err != nil {
				return err
			}
			chunk.Reset()
			if err := rotate(p, spec.Keep); err != nil {
				return err
			}
			size = 0
		}
	}
	if chunk.Len() > 0 {
		return appendFile(p, chunk.String())
	}
	return nil
}

func appendFile(p, s string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append log: %w", err)
	}
	_, err = io.WriteString(f, s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append log %s: %w", p, err)
	}
	return nil
}

// rotate rotates like ESXi's vmsyslogd: vmkernel.log -> vmkernel.0.gz,
// 0.gz -> 1.gz, …, keeping keep files; the live log is replaced by a new
// empty file (a new inode, so a follower notices). 4.x: messages ->
// messages.0.gz.
func rotate(p string, keep int) error {
	base := strings.TrimSuffix(p, ".log")
	name := func(i int) string { return fmt.Sprintf("%s.%d.gz", base, i) }
	if keep < 1 {
		keep = 1
	}
	os.Remove(name(keep - 1))
	for i := keep - 2; i >= 0; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate %s: %w", p, err)
		}
	}
	if err := gzipTo(p, name(0)); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".new")
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		return fmt.Errorf("rotate %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("rotate %s: %w", p, err)
	}
	return nil
}

func gzipTo(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", src, err)
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", src, err)
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rotate %s: %w", src, err)
	}
	return nil
}
