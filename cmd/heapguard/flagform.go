package main

import (
	"errors"
	"flag"
	"strings"
	"time"
)

// wantForm says what a flag's value should look like, by its type; "" for
// free text, whose own Set says what is wrong.
func wantForm(v flag.Value) string {
	g, ok := v.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case bool:
		return "true or false"
	case int, int64, uint, uint64:
		return "a whole number like 3"
	case float64:
		return "a number like 12.5"
	case time.Duration:
		return "a duration like 10s, 5m or 1h30m"
	}
	return ""
}

// valueError replaces the flag package's "parse error" and "value out of
// range" with the form the value should have.
func valueError(v flag.Value, err error) error {
	form := wantForm(v)
	switch {
	case form == "":
		return err
	case strings.Contains(err.Error(), "out of range"):
		return errors.New("out of range: want " + form)
	}
	return errors.New("want " + form)
}

// formValue is a flag value whose parse errors say the expected form.
type formValue struct{ flag.Value }

func (v formValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		return valueError(v.Value, err)
	}
	return nil
}

func (v formValue) Get() any {
	if g, ok := v.Value.(flag.Getter); ok {
		return g.Get()
	}
	return nil
}

// IsBoolFlag keeps "--json" without a value working.
func (v formValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// explainForms makes every flag of fs say the expected form when its value
// does not parse. Only for parsing: the flag package names a flag's type
// in usage by its value's own type, so usage is printed from an unwrapped
// set.
func explainForms(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) { f.Value = formValue{f.Value} })
}
