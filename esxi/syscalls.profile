# System calls VMware ESXi's kernel (vmkernel's Linux user-world emulation)
# does not have. scripts/esxi-test.sh makes each one answer ENOSYS under
# strace. Format: one call per line, then "#" and where the claim comes from.
# Blank lines and lines starting with "#" are ignored.
#
# Sources:
#   public    = a public crash report from a real ESXi host
#   vmware    = VMware's internal Go port notes (madvise, mincore missing;
#               EPOLLRDHUP unsupported, which is a flag, not a call, so it
#               cannot be injected here; rtpatch drops it after an EINVAL)
#   assumed   = newer than ESXi's kernel emulation, not seen on a real host;
#               injected so the binary is proven not to need it

# The netpoller: the one that kills every stock Go binary.
epoll_pwait        # public: golang/go#21347, golang/go#73350, realvnc-labs/rport#505, schollz/croc#540 ("epollwait on fd N failed with 38")
epoll_pwait2       # assumed: Linux 5.11; Go 1.26 does not call it
# epoll_create1 and eventfd2 are NOT in this list: the public crash reports
# show the stock runtime getting past netpollinit to epoll_pwait, and with
# them injected a stock binary dies earlier ("epollcreate failed with 38"),
# not with the ESXi signature. rtpatch still falls back for both (older
# hosts); scripts/esxi-test.sh proves that in its "fallbacks" run, which adds
# epoll_create1,eventfd2,pipe2 (see FALLBACK_CALLS there).

# Memory.
madvise            # vmware: runtime already falls back to mmap(MAP_FIXED) after MADV_FREE and MADV_DONTNEED fail
mincore            # vmware: runtime uses it only when neither auxv nor /proc/self/auxv gives the page size

# Files: nxadm/tail must run with Poll: true, and (*Tail).Cleanup must not be
# called (it starts the inotify watcher, which calls os.Exit(1) without inotify).
inotify_init       # assumed: DESIGN.md "inotify may not exist on the host"
inotify_init1      # assumed: as above
inotify_add_watch  # assumed: as above
statx              # assumed: Linux 4.11; Go uses newfstatat on amd64
openat2            # assumed: Linux 5.6
faccessat2         # assumed: Linux 5.8; syscall.Faccessat falls back to faccessat
copy_file_range    # assumed: Linux 4.5; internal/poll falls back on ENOSYS
close_range        # assumed: Linux 5.9

# Processes: os.StartProcess checks pidfd support once and runs without it.
clone3             # assumed: Linux 5.3; Go uses it only for SysProcAttr.UseCgroupFD
pidfd_open         # assumed: Linux 5.3
pidfd_send_signal  # assumed: Linux 5.1
pidfd_getfd        # assumed: Linux 5.6

# Misc.
getrandom          # assumed: Linux 3.17; crypto/rand falls back to /dev/urandom
rseq               # assumed: Linux 4.18; Go does not call it
membarrier         # assumed: Linux 4.3; Go does not call it

# NOT injected: calls a Go 1.26 binary needs with no fallback in the standard
# library. They predate Linux 2.6.32 and are believed present on ESXi (Go
# binaries built since these became unconditional run there once the
# netpoller is fixed), but no public source confirms it. Injecting one shows
# what breaks (scripts/esxi-test.sh: ESXI_EXTRA_ENOSYS=pipe2):
#   pipe2     os.Pipe, so os/exec with captured output fails ("pipe2: function not implemented")
#   dup3      fork/exec child fd setup, so every exec fails
#   accept4   net listeners (heapguard does not listen on the host; inetd passes stdin)
#   splice    io.Copy between sockets (treated as a hard error on ENOSYS)
