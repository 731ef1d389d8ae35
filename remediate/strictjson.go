package remediate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// checkKeys refuses JSON that json.Unmarshal would read loosely into v (a
// struct): a top-level key that names a field in other letter case
// ("vErsion" is read as "version"), or a key given twice in any object
// (the last one wins: a restart time given twice, say). A damaged record
// must not pass for one heapguard wrote, with a smaller spend. Keys that
// name no field are left alone, as Unmarshal leaves them: a newer
// heapguard may add some. What does not parse is left for Unmarshal to
// refuse.
func checkKeys(b []byte, v any) error {
	var names []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	// One frame per open object or array: the keys seen in an object, nil
	// for an array. A key is a string token read where a key is expected.
	type frame struct{ keys map[string]bool }
	var stack []frame
	wantKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]bool{}})
			wantKey = true
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			wantKey = false
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return nil
			}
			wantKey = stack[len(stack)-1].keys != nil
			continue
		}
		if !wantKey {
			// A value: in an object, a key comes next.
			wantKey = len(stack) > 0 && stack[len(stack)-1].keys != nil
			continue
		}
		key, _ := tok.(string)
		top := stack[len(stack)-1]
		if top.keys[key] {
			return fmt.Errorf("key %q given twice", key)
		}
		top.keys[key] = true
		if len(stack) == 1 {
			for _, name := range names {
				// EqualFold folds as Unmarshal does ("ſ" is "s", "K" is "k").
				if key != name && strings.EqualFold(key, name) {
					return fmt.Errorf("key %q is not %q", key, name)
				}
			}
		}
		wantKey = false
	}
}
