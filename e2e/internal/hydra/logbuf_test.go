package hydra

import (
	"strings"
	"testing"
)

func TestLogBuffer(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		writes    []string
		mark      int // Since(mark)
		wantAll   string
		wantSince string
	}{
		{name: "under the bound keeps everything", max: 64, writes: []string{"ab", "cd"}, mark: 2, wantAll: "abcd", wantSince: "cd"},
		{name: "over the bound drops the oldest", max: 4, writes: []string{"abc", "def"}, mark: 3, wantAll: "cdef", wantSince: "def"},
		{name: "mark inside dropped bytes returns what is kept", max: 4, writes: []string{"abcd", "efgh"}, mark: 1, wantAll: "efgh", wantSince: "efgh"},
		{name: "mark at the end is empty", max: 8, writes: []string{"abc"}, mark: 3, wantAll: "abc", wantSince: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newLogBuffer(tc.max)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := b.String(); got != tc.wantAll {
				t.Errorf("String() = %q, want %q", got, tc.wantAll)
			}
			if got := b.Since(tc.mark); got != tc.wantSince {
				t.Errorf("Since(%d) = %q, want %q", tc.mark, got, tc.wantSince)
			}
			if got, want := b.Len(), len(strings.Join(tc.writes, "")); got != want {
				t.Errorf("Len() = %d, want %d", got, want)
			}
		})
	}
}
