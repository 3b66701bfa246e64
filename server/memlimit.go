package server

import (
	"strconv"
	"strings"
)

// The container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{
	"/sys/fs/cgroup/memory.max",
	"/sys/fs/cgroup/memory/memory.limit_in_bytes",
}

// memoryLimit is the Go runtime's soft memory limit for lease.max_memory_mb
// mb: the lease cache's bound, half again for its index maps, the views of
// recent hits and garbage between collections, and 64 MiB for the gRPC,
// HTTP and telemetry stacks, so the collector runs before garbage doubles
// the heap and RSS stays near the bound (BENCHMARKS.md). Inside a container
// with a memory limit it is at most 90% of that limit: a soft limit above
// the hard one would never make the collector work harder before the
// kernel kills the process. container is the limit found, 0 for none.
func memoryLimit(mb int, readFile func(string) ([]byte, error)) (limit, container int64) {
	limit = int64(mb)<<20*3/2 + 64<<20
	container = containerMemory(readFile)
	if container > 0 {
		limit = min(limit, container/10*9)
	}
	return limit, container
}

// containerMemory reads the cgroup memory limit; 0 when there is none or
// it cannot be read ("max", v1's page-rounded "unlimited", a missing file).
func containerMemory(readFile func(string) ([]byte, error)) int64 {
	for _, f := range cgroupMemoryFiles {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<62 {
			return 0 // "max", or no limit in v1's spelling
		}
		return v
	}
	return 0
}
