// Package follow reads what the vmkernel log gained since a saved
// Position: ReadFrom yields every complete line written after it, once and
// in order, up to the end the log had when the read began, across restarts,
// rotation (vmkernel.0.gz, messages.0.gz, vmkernel.log.1), copytruncate,
// truncation, deletion and a log that does not exist yet. Lines that were
// gone before any read could see them are reported as a gap (Stats.Gaps
// and a warning), never skipped silently.
//
// It does not parse lines, run commands or decide anything. A read is a
// plain call on the caller's goroutine that starts nothing and never exits
// the process. An error (EIO or ESTALE from a datastore in all-paths-down)
// is returned by Err, and the next read goes on from the last line
// yielded. Memory stays bounded: lines longer than MaxLine are skipped as
// they stream past, and lines are held in batches of about batchBytes.
//
// # How
//
// A Position names the content being read by the hash of its first line
// (FirstLineHash) and an offset into it, so the rest of a file can be found
// again after it was rotated, even gzipped. resolve (rotate.go) turns a
// Position and what is on disk into the streams to read in order: the rest
// of the old content from the rotated copy with the same first line, every
// newer rotated copy, then the live file.
//
// The rotated copies are listed, opened and listed again (openCopies):
// each is read through the descriptor opened then, and a listing that
// changed meanwhile (a rotation running) is dropped and the read starts
// again, so a copy is not read under another's name, skipped or read
// twice. A read that keeps meeting rotations goes on with the last listing
// it took.
//
// The live file is read through the descriptor opened at the start, up to
// the size it had then. A file truncated and rewritten keeps its inode, so
// a batch of lines is yielded only if the file still has the first line
// seen at open and is at least as long as what was read. Otherwise the
// read starts again from the last line yielded.
//
// # Limits
//
// A file replaced by one with the same first line, or truncated and
// rewritten with the same first line, looks unchanged. Lines written after
// a read to a file that is then deleted, or truncated without a copy, are
// lost (a truncation without a copy is reported as a gap even when nothing
// was written since). So are lines a writer adds to a renamed file after a
// read moved on to the new one (vmsyslogd rotates its own files, so it
// does not), and copies rotated away before the next read. A rotated copy
// read while it is still being gzipped is read as far as it goes; the
// plain copy (vmkernel.0) is preferred when both exist.
//
// A Position taken while the log held no complete line (empty, or a
// partial first line) has no FirstLineHash; if that file is rotated before
// the next read, the rotated copies modified since Position.Time are read
// whole. Kernel file times come from a coarse clock (a few ms behind
// time.Now) and a rotator that compresses later writes a new file, so in
// that case only a copy written within a few ms of the read, or
// compressed after it, can be missed or read twice.
package follow
