package leasecache

// Evictions is how many leases the cache dropped to make room for newer
// ones since New: each one is a token validated again before its window
// closed. Leases aging out, revokes and negative leases pushed out by a
// flood of bad tokens do not count; only a memory bound too small for the
// traffic does (raise lease.max_memory_mb).
func (c *Cache) Evictions() uint64 { return c.evicted.Load() }

// NegativeLen is the number of negative leases held, counting those past
// NegativeTTL that the store has not reclaimed yet.
func (c *Cache) NegativeLen() int { return c.neg.Len() }
