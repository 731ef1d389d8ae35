package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// docs/json.md is the contract scripts rely on, so the tests read it as a
// schema: each "### <name>" heading followed by a table of
// | `key` | type | meaning | rows defines one object. Types:
//
//	string, integer, number, bool, time (RFC 3339), level (OK, WARNING,
//	CRITICAL, UNKNOWN), map of integers, map of strings, any,
//	list of X, X or null, and the name of another object;
//	", optional" after the type: the key may be left out.
//
// checkJSON then validates real output against it: every key documented,
// every key not marked optional present, every value of its type.

type docField struct {
	typ      string
	optional bool
}

type jsonDoc map[string]map[string]docField

var (
	docHeading = regexp.MustCompile("^### (.+)$")
	docRow     = regexp.MustCompile("^\\| ((?:`[a-z0-9_]+`(?:, )?)+) \\| ([^|]+) \\|")
	docKey     = regexp.MustCompile("`([a-z0-9_]+)`")
)

func loadJSONDoc(t *testing.T) jsonDoc {
	t.Helper()
	f, err := os.Open("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := jsonDoc{}
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := docHeading.FindStringSubmatch(line); m != nil {
			cur = strings.TrimSpace(m[1])
			if _, dup := doc[cur]; dup {
				t.Fatalf("docs/json.md: object %q defined twice", cur)
			}
			doc[cur] = map[string]docField{}
			continue
		}
		m := docRow.FindStringSubmatch(line)
		if m == nil || cur == "" {
			continue
		}
		typ := strings.TrimSpace(m[2])
		fd := docField{typ: typ}
		if t2, ok := strings.CutSuffix(typ, ", optional"); ok {
			fd = docField{typ: t2, optional: true}
		}
		for _, k := range docKey.FindAllStringSubmatch(m[1], -1) {
			doc[cur][k[1]] = fd
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for name, fields := range doc {
		if len(fields) == 0 {
			delete(doc, name) // a heading without a table (prose)
		}
	}
	return doc
}

// checkJSON validates one JSON value against the object named root.
// Each object validated is marked in seen.
func checkJSON(t *testing.T, doc jsonDoc, seen map[string]bool, root string, data []byte) {
	t.Helper()
	var v any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", root, err, data)
	}
	var errs []string
	doc.check(root, root, v, seen, &errs)
	sort.Strings(errs)
	for _, e := range errs {
		t.Errorf("%s", e)
	}
}

func (doc jsonDoc) check(path, typ string, v any, seen map[string]bool, errs *[]string) {
	bad := func(format string, args ...any) {
		*errs = append(*errs, path+": "+fmt.Sprintf(format, args...))
	}
	if inner, ok := strings.CutSuffix(typ, " or null"); ok {
		if v == nil {
			return
		}
		typ = inner
	}
	switch {
	case typ == "any":
		return
	case strings.HasPrefix(typ, "list of "):
		list, ok := v.([]any)
		if !ok {
			bad("want a list (never null), got %T", v)
			return
		}
		elem := strings.TrimPrefix(typ, "list of ")
		for i, e := range list {
			doc.check(fmt.Sprintf("%s[%d]", path, i), singular(elem), e, seen, errs)
		}
		return
	case strings.HasPrefix(typ, "map of "):
		m, ok := v.(map[string]any)
		if !ok {
			bad("want an object, got %T", v)
			return
		}
		for k, e := range m {
			doc.check(path+"."+k, singular(strings.TrimPrefix(typ, "map of ")), e, seen, errs)
		}
		return
	}
	switch typ {
	case "string":
		if _, ok := v.(string); !ok {
			bad("want a string, got %T", v)
		}
	case "time":
		s, ok := v.(string)
		if _, err := time.Parse(time.RFC3339Nano, s); !ok || err != nil {
			bad("want an RFC 3339 time, got %v", v)
		}
	case "level":
		if s, _ := v.(string); s != "OK" && s != "WARNING" && s != "CRITICAL" && s != "UNKNOWN" {
			bad("want OK, WARNING, CRITICAL or UNKNOWN, got %v", v)
		}
	case "integer":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			bad("want an integer, got %v", v)
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			bad("want a number, got %T", v)
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			bad("want a bool, got %T", v)
		}
	default:
		fields, ok := doc[typ]
		if !ok {
			bad("docs/json.md defines no object %q", typ)
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			bad("want a %s object, got %T", typ, v)
			return
		}
		seen[typ] = true
		for k, e := range m {
			fd, ok := fields[k]
			if !ok {
				bad("key %q is not in docs/json.md (### %s)", k, typ)
				continue
			}
			doc.check(path+"."+k, fd.typ, e, seen, errs)
		}
		for k, fd := range fields {
			if _, ok := m[k]; !ok && !fd.optional {
				bad("documented key %q is missing", k)
			}
		}
	}
}

// singular turns "port objects" and "strings" into "port" and "string".
func singular(s string) string {
	s = strings.TrimSuffix(s, " objects")
	s = strings.TrimSuffix(s, " object")
	if s == "strings" || s == "integers" || s == "numbers" || s == "times" || s == "levels" {
		s = strings.TrimSuffix(s, "s")
	}
	return s
}
