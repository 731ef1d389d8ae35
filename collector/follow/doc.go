// Package follow reads the live vmkernel log: every complete line exactly
// once, across restarts (a saved Position), rotation (vmkernel.0.gz,
// messages.0.gz, vmkernel.log.1), copytruncate, truncation, deletion and a
// log that does not exist yet.
//
// It must not parse lines, run commands or decide anything.
//
// # Design
//
// A Position names the content being read by the hash of its first line
// (FirstLineHash) and an offset into it, so the rest of a file can be found
// again after it was rotated, even gzipped. resolve (rotate.go) turns a
// Position and what is on disk into the streams to read in order: the rest
// of the old content (from the descriptor the follower kept open, or the
// rotated copy with the same first line), every newer rotated copy, then
// the live file. The live Follower and the one-shot ReadFrom share it.
// The rotated copies are listed, opened and listed again (openCopies): each
// is read through the descriptor opened then, and a listing that changed
// meanwhile (a rotation running) is dropped and taken again, so a copy is
// not read under another's name, skipped or read twice. (A one-shot read
// that keeps meeting rotations for half a second goes on with the last
// listing it took.)
//
// The live follower polls (ESXi may lack inotify). Each poll it checks the
// file itself: inode at the path, size and first-line hash of the file it
// holds open. New bytes are read with the tail library (nxadm/tail, the
// maintained fork of hpcloud/tail) for one pass from the checked offset to
// the end, and the lines are handed over only after the file is checked
// again. A library failure (error, panic, stall, offsets that disagree
// with the line lengths) is counted and the same bytes are read by our own
// bounded scanner, so the library can neither kill nor blind the agent.
//
// # Hazards found in github.com/nxadm/tail v1.4.11
//
// Exits the process (util.Fatal logs to stderr through its own logger,
// whatever Config.Logger is, then calls os.Exit(1): util/util.go:21-24; no
// recover can stop it):
//   - watch/polling.go:81: the Follow-mode poll goroutine exits the process
//     when stat of the path fails with anything but ENOENT (EIO or ENODEV
//     on a scratch datastore in all-paths-down, ESTALE on NFS, ENOTDIR or
//     ELOOP while /scratch is re-pointed, EACCES). TestLibraryExitsOnStatError
//     shows it. Its goroutine sleeps with time.Sleep (polling.go:69), so it
//     stats once more even after Stop.
//   - watch/inotify.go:121 and watch/inotify_tracker.go:220: the same with
//     inotify, and when no inotify watcher can be made.
//   - tail.go:124-125: ReOpen without Follow.
//
// This is why the library is never run with Follow: the poll goroutine is
// started only from waitForChanges (tail.go:347, 380), which runs only
// when Follow is set. With Follow false, ReOpen must be false too.
//
// Stops for good (tail.Err set, Lines closed), blinding a follower:
//   - tail.go:376-383: the file vanishes between reaching EOF and the first
//     stat of the poll watcher (a rotation at the wrong moment).
//   - tail.go:223-227: BlockUntilExists fails (any stat error but ENOENT).
//   - tail.go:356: any read error other than EOF.
//
// Loses or garbles lines:
//   - watch/polling.go:91-102: truncation is seen only as "size smaller than
//     at the last poll"; a file truncated and grown past the old size
//     between two polls (250 ms, polling.go:118) looks appended to, and the
//     library goes on from its old offset in the middle of the new data,
//     never reading the new file's first lines. TestLibraryMissesRegrow.
//   - tail.go:389-399: on rename or delete (ReOpen) it opens the new file at
//     once; what was written to the old file since its last read is never
//     read. TestLibraryLosesTailOnRotation.
//   - tail.go:403-411: on truncation it reads from 0; what was written
//     before the truncation (only in the copytruncate copy) is lost.
//   - tail.go:336-341: without CompleteLines a partial last line is sent as
//     a line, then it seeks to the end, skipping what was written between.
//     With CompleteLines and no Follow, a partial last line is still sent
//     at EOF (tail.go:263-266, 329-332); we drop it by its offset.
//   - tail.go:311-327: with a RateLimiter, a full bucket seeks to the end
//     (lines dropped), and tail.go:317 sends without watching Dying, so
//     Stop can hang. We set no RateLimiter.
//   - tail.go:274-292: with MustExist false, the saved offset is applied to
//     whatever file appears at the path later. We use MustExist true.
//
// Other:
//   - tail.go:240, 254: a line is read whole into memory (ReadString, and
//     the CompleteLines buffer) whatever its length; MaxLineSize only splits
//     it afterwards (tail.go:449) and gives every piece the same offset
//     (tail.go:455). We hand the library at most MaxLine new bytes; larger
//     steps go through our scanner, which never holds more than MaxLine.
//   - tail.go:271-272: Lines is closed before the tomb is marked done, so
//     Err() read right after Lines closes says "tomb: still alive" even for
//     a clean end; call Wait (found by TestFollowAppend, 1 run in 70).
//   - tail.go:455: SeekInfo.Offset is the offset after the line, not its
//     start. tail.go:165-170: Tell reads the file field without the lock
//     that reopen writes it under (data race if called from outside).
//   - tail.go:113, 139-141: the default logger writes to stderr; we pass
//     DiscardingLogger.
//   - gopkg.in/tomb.v1 tomb.go:141-144 panics on Kill(ErrDying) while alive;
//     the library passes ErrDying only when already dying (tail.go:278,
//     349), so it is not reachable.
//
// # Limits
//
// A file replaced by one with the same first line, or truncated and
// rewritten with the same first line, looks unchanged. A writer that keeps
// writing into a renamed file after the follower moved to the new one
// loses those lines (vmsyslogd rotates its own files, so it does not). A
// rotated copy read while it is still being gzipped is read as far as it
// goes; the plain copy (vmkernel.0) is preferred when both exist.
//
// A Position taken while the log held no complete line (empty, or a
// partial first line) has no FirstLineHash; if that file is rotated before
// the next read, the rotated copies modified since Position.Time are read
// whole. Kernel file times come from a coarse clock (a few ms behind
// time.Now) and a rotator that compresses later writes a new file, so in
// that case only a copy written within a few ms of the read, or
// compressed after it, can be missed or read twice.
package follow
