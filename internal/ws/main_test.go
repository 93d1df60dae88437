package ws

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// reader, writer, poller and sweeper the Server starts must be gone once
// Run has returned.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// eventually polls cond every few milliseconds until it holds or d passes,
// when the test fails with msg.
func eventually(t testing.TB, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: "+msg, append([]any{d}, args...)...)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronization
	}
}

// waitTimeout is the generous deadline tests use for anything that should
// happen "soon": -race on a loaded two-core machine is slow.
const waitTimeout = 10 * time.Second
