// Package panics owns how a recovered panic is logged: what may be said of
// it without the value, which may be built from request data and so hold a
// token.
package panics

import (
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
)

// Attrs describes a recovered panic for a log line: the value's type, a
// runtime error's text and the stack (at most 8 KiB), never the value
// itself (SPEC §1: raw tokens are never logged; clipping would still log a
// short token whole). The engine and both adapters log their panics with
// it.
func Attrs(p any) []slog.Attr {
	attrs := []slog.Attr{slog.String("panic_type", fmt.Sprintf("%T", p))}
	if re, ok := p.(runtime.Error); ok {
		attrs = append(attrs, slog.String("panic", re.Error()))
	}
	return append(attrs, slog.String("stack", clipStack(debug.Stack())))
}

// clipStack bounds a logged stack trace. Arguments appear in it as words
// (pointers, lengths), never as string contents.
func clipStack(b []byte) string {
	const maxStack = 8 << 10
	if len(b) > maxStack {
		return string(b[:maxStack]) + "…"
	}
	return string(b)
}
