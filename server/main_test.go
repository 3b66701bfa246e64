package server

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test here starts listeners, engines and caches; none may leave a
// goroutine behind once Run has drained.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http's keep-alive connections of test clients close lazily.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		// rueidis sleeps out a reconnect backoff (under 1s) after Close
		// when the server went away; it ends by itself, touching nothing.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	)
}
