package leasecache

import (
	"testing"

	"go.uber.org/goleak"
)

// Close must stop bigcache's cleaner goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
