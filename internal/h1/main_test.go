package h1

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: every
// connection goroutine must be gone once Run has returned.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
