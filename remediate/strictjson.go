package remediate

import (
	"bytes"
	"encoding/json"
	"errors"
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
	err := walkKeys(dec, func(depth int, key string) error {
		if depth > 0 {
			return nil
		}
		for _, name := range names {
			// EqualFold folds as Unmarshal does ("ſ" is "s", "K" is "k").
			if key != name && strings.EqualFold(key, name) {
				return fmt.Errorf("key %q is not %q", key, name)
			}
		}
		return nil
	}, 0)
	if errors.Is(err, errNotJSON) {
		return nil
	}
	return err
}

// errNotJSON stops walkKeys at what does not parse: Unmarshal says why.
var errNotJSON = errors.New("not JSON")

// walkKeys reads one JSON value from dec, calling check with each object
// key and the object's depth (0 for the top level), and refuses a key
// given twice in one object.
func walkKeys(dec *json.Decoder, check func(depth int, key string) error, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return errNotJSON
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return errNotJSON
			}
			key, _ := tok.(string)
			if seen[key] {
				return fmt.Errorf("key %q given twice", key)
			}
			seen[key] = true
			if err := check(depth, key); err != nil {
				return err
			}
			if err := walkKeys(dec, check, depth+1); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for dec.More() {
			if err := walkKeys(dec, check, depth+1); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing } or ]
		return errNotJSON
	}
	return nil
}
