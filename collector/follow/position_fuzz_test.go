package follow

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzLoadPosition reads the saved log position with any content: bad
// content is ErrBadPosition (the caller starts at the end of the log),
// never a negative offset; a position that loads is saved and loaded back
// unchanged.
func FuzzLoadPosition(f *testing.F) {
	f.Add([]byte(`{"path":"/var/log/vmkernel.log","inode":1234,"offset":5678,"first_line_hash":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","time":"2014-06-10T06:00:00Z"}` + "\n"))
	f.Add([]byte(`{"offset":-1}`))
	f.Add([]byte(`{"offset":9223372036854775807,"inode":18446744073709551615,"time":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"path":"a\u0000b","time":"2014-06-10T06:00:00.123456789+02:00"}`))
	f.Add([]byte("{"))
	dir := f.TempDir()
	p, back := filepath.Join(dir, "position.json"), filepath.Join(dir, "again.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		pos, err := LoadPosition(p)
		if err != nil {
			if !errors.Is(err, ErrBadPosition) {
				t.Fatalf("error %v is not ErrBadPosition", err)
			}
			return
		}
		if pos.Offset < 0 {
			t.Fatalf("negative offset %d", pos.Offset)
		}
		if err := SavePosition(back, pos); err != nil {
			t.Fatal(err)
		}
		again, err := LoadPosition(back)
		if err != nil {
			t.Fatalf("a saved position does not load: %v", err)
		}
		if diff := cmp.Diff(pos, again); diff != "" {
			t.Fatalf("saved and loaded back (-saved +loaded):\n%s", diff)
		}
	})
}
