package server

import (
	"io/fs"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name          string
		mb            int
		files         map[string]string
		limit, contnr int64
	}{
		{"no cgroup", 256, nil, 448 * mib, 0},
		{"v2 unlimited", 256, map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 448 * mib, 0},
		{"v2 above the formula", 256, map[string]string{"/sys/fs/cgroup/memory.max": "1073741824\n"}, 448 * mib, 1 << 30},
		{"v2 below it: 90% of the container", 256, map[string]string{"/sys/fs/cgroup/memory.max": "402653184\n"}, 402653184 / 10 * 9, 384 * mib},
		{"v1 limited", 64, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "134217728"}, 134217728 / 10 * 9, 128 * mib},
		{"v1 unlimited", 64, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712"}, 160 * mib, 0},
		{"garbage", 64, map[string]string{"/sys/fs/cgroup/memory.max": "lots"}, 160 * mib, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := func(name string) ([]byte, error) {
				if v, ok := tt.files[name]; ok {
					return []byte(v), nil
				}
				return nil, fs.ErrNotExist
			}
			limit, container := memoryLimit(tt.mb, read)
			if limit != tt.limit || container != tt.contnr {
				t.Fatalf("memoryLimit(%d) = %d, %d; want %d, %d", tt.mb, limit, container, tt.limit, tt.contnr)
			}
		})
	}
}
