package deploy

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// tableErrorRunes is how much of an error the table shows; the line
// printed when the host finished has all of it.
const tableErrorRunes = 100

// Status is a result in one word or two: installed, unchanged, upgraded,
// failed or not started.
func (r Result) Status() string {
	switch {
	case errors.Is(r.Err, ErrNotStarted):
		return "not started"
	case r.Err != nil:
		return "failed"
	}
	return string(r.Action)
}

// Count is how many results failed and how many were never started.
func Count(results []Result) (failed, notStarted int) {
	for _, r := range results {
		switch {
		case errors.Is(r.Err, ErrNotStarted):
			notStarted++
		case r.Err != nil:
			failed++
		}
	}
	return failed, notStarted
}

// WriteTable writes results one a line, in the order given, in aligned
// columns: host, status, the SHA-256's first 12 digits, and the installed
// path or the error (on one line, shortened).
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tRESULT\tSHA256\tPATH OR ERROR")
	for _, r := range results {
		sum, where := "-", r.Path
		if errors.Is(r.Err, ErrNotStarted) {
			where = ""
		} else if r.Err != nil {
			where = shorten(r.Err.Error(), tableErrorRunes)
		} else if r.SHA256 != "" {
			sum = fmt.Sprintf("%.12s", r.SHA256)
		}
		if where == "" {
			where = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Target, r.Status(), sum, where)
	}
	return tw.Flush()
}

// shorten puts s on one line (tabs, which would break the columns, too)
// and cuts it to n runes, the cut marked with "...".
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-3]) + "..."
}
