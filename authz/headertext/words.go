package headertext

// Passable runs on every allowed header, so it reads eight bytes at a
// time (a hit's four identity headers, names and values: 138 -> 78 ns
// against a byte table).
// Each test below is exact for the question asked of it (is some byte
// such-and-such), which is all it is used for.

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// word is the first eight bytes of s, little-endian; the compiler makes
// it one load.
func word(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// hasByte is non-zero when some byte of w is b.
func hasByte(w uint64, b byte) uint64 {
	x := w ^ ones*uint64(b)
	return (x - ones) &^ x & highs
}

// breaks is non-zero when some byte of w is NUL, CR or LF.
func breaks(w uint64) uint64 { return hasByte(w, 0) | hasByte(w, '\r') | hasByte(w, '\n') }
