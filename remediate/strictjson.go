package remediate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// checkKeys refuses a JSON object whose top-level keys json.Unmarshal
// would take loosely for the fields of v (a struct): a key that names a
// field in other letter case ("vErsion" is read as "version"), or a key
// given twice (the last one wins). A damaged record must not pass for one
// heapguard wrote, say with a smaller spend. Keys that name no field are
// left alone, as Unmarshal leaves them: a newer heapguard may add some.
// What is not an object is left for Unmarshal to refuse.
func checkKeys(b []byte, v any) error {
	var names []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		for _, name := range names {
			// EqualFold folds as Unmarshal does ("ſ" is "s", "K" is "k").
			if key != name && strings.EqualFold(key, name) {
				return fmt.Errorf("key %q is not %q", key, name)
			}
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil
		}
	}
	return nil
}
