package panics

import (
	"errors"
	"strings"
	"testing"
)

func TestAttrsOmitValue(t *testing.T) {
	const secret = "c2VjcmV0LXRva2Vu"
	for _, p := range []any{"Bearer " + secret, errors.New(secret)} {
		var b strings.Builder
		for _, a := range Attrs(p) {
			b.WriteString(a.Key + "=" + a.Value.String() + "\n")
		}
		if out := b.String(); strings.Contains(out, secret) || !strings.Contains(out, "panic_type=") || !strings.Contains(out, "stack=") {
			t.Errorf("Attrs(%T) = %s", p, out)
		}
	}
	var re error
	outOfRange := func(i int) int { return []int{}[i] }
	func() {
		defer func() { re, _ = recover().(error) }()
		outOfRange(1) // a runtime error: its text is safe and useful
	}()
	if attrs := Attrs(re); len(attrs) != 3 || attrs[1].Key != "panic" {
		t.Errorf("runtime error attrs %v, want panic_type, panic, stack", attrs)
	}
}
