package remediate

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// flockTable is the kernel's list of flocks: holder pid by "maj:min:inode".
type flockTable map[string]int

// kernelFlocks reads /proc/locks (lines like
// "1: FLOCK  ADVISORY  WRITE 3738 fe:00:9978200 0 EOF"); waiters ("->")
// hold nothing and are skipped.
func kernelFlocks() (flockTable, error) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t := flockTable{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		pid, _ := strconv.Atoi(fields[4])
		t[fields[5]] = pid
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/locks: %w", err)
	}
	return t, nil
}

// holder reports whether the file fi describes is flocked, and by whom.
func (t flockTable) holder(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	dev := uint64(st.Dev)
	key := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), st.Ino)
	pid, held := t[key]
	return pid, held
}
