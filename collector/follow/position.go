package follow

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/heapguard/heapguard/host"
)

// HeadSize is how much of a file's start identifies its content: the first
// line, cut at this many bytes.
const HeadSize = 4096

// ErrBadPosition marks a position file that cannot be used.
var ErrBadPosition = errors.New("follow: bad position")

// Position says how far a log has been read. Offset counts bytes of the
// file's content (decompressed, once the file is rotated into a .gz), and
// FirstLineHash names that content, so the rest can be found again after a
// rotation; Inode only tells a truncation from a rotation. Time is the
// wall-clock time of the read: when nothing complete was read from a file
// yet (no FirstLineHash), the rotated copies modified since are read whole.
type Position struct {
	Path          string    `json:"path"`
	Inode         uint64    `json:"inode"`
	Offset        int64     `json:"offset"`
	FirstLineHash string    `json:"first_line_hash,omitempty"`
	Time          time.Time `json:"time"`
}

// headHash hashes the first line of b (b holds up to HeadSize bytes from the
// start of a file). It returns "" while the head is not settled yet: no
// newline and fewer than HeadSize bytes, so the writer may still extend it.
func headHash(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else if len(b) < HeadSize {
		return ""
	}
	if len(b) > HeadSize {
		b = b[:HeadSize]
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// readHead hashes the head of r, read from its start.
func readHead(r io.Reader) (string, error) {
	buf := make([]byte, HeadSize)
	n, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	return headHash(buf[:n]), nil
}

// inodeOf returns the inode number of fi (0 where the platform has none).
func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// LoadPosition reads a position saved by SavePosition. A missing file gives
// an error matching fs.ErrNotExist; bad content gives ErrBadPosition.
func LoadPosition(path string) (Position, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Position{}, fmt.Errorf("load position: %w", err)
	}
	var p Position
	if err := json.Unmarshal(b, &p); err != nil {
		return Position{}, fmt.Errorf("%w: %s: %v", ErrBadPosition, path, err)
	}
	if p.Offset < 0 {
		return Position{}, fmt.Errorf("%w: %s: negative offset %d", ErrBadPosition, path, p.Offset)
	}
	return p, nil
}

// SavePosition writes p to path atomically: a temporary file in the same
// folder, fsync, rename, then fsync of the folder, so a crash leaves either
// the old or the new position, never a torn one.
func SavePosition(path string, p Position) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("save position %s: %w", path, err)
	}
	if err := host.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save position: %w", err)
	}
	return nil
}

// PositionAtEnd returns the position after the last complete line of the
// file at path, for a first start that should skip the history.
func PositionAtEnd(path string) (Position, error) {
	f, err := os.Open(path)
	if err != nil {
		return Position{}, fmt.Errorf("position at end: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Position{}, fmt.Errorf("position at end: %w", err)
	}
	head, err := readHead(io.NewSectionReader(f, 0, HeadSize))
	if err != nil {
		return Position{}, fmt.Errorf("position at end %s: %w", path, err)
	}
	end, err := lastLineEnd(f, fi.Size())
	if err != nil {
		return Position{}, fmt.Errorf("position at end %s: %w", path, err)
	}
	return Position{Path: path, Inode: inodeOf(fi), Offset: end, FirstLineHash: head, Time: time.Now().UTC()}, nil
}

// lastLineEnd returns the offset just after the last '\n' before size.
func lastLineEnd(r io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		n, err := r.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}
