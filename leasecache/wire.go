package leasecache

// EncodeLease is the lease's wire form (layout in encoding.go), for a store
// that shares leases beyond this process; the cache keeps its own, smaller
// layout (entry.go). Gen is encoded too: it means something only to the Cache whose
// Generation it came from.
func EncodeLease(l Lease) ([]byte, error) { return encode(l) }

// DecodeLease reads what EncodeLease wrote. The lease's strings share b's
// memory, so b must not be changed afterwards. A malformed b is an error,
// never a panic.
func DecodeLease(b []byte) (Lease, error) { return decode(b) }
