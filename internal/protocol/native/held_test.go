package native

import "testing"

// TestReleaseDropsTheHeldMap: once no channel is being set up, a session
// keeps no map of held pushes (an idle connection is ~400 bytes lighter).
func TestReleaseDropsTheHeldMap(t *testing.T) {
	s := &session{}
	s.hold("a")
	s.hold("b")
	s.release("a", 0)
	if s.held == nil || s.nheld.Load() != 1 {
		t.Fatalf("after releasing one of two channels: held %v, nheld %d", s.held, s.nheld.Load())
	}
	s.release("b", 0)
	if s.held != nil || s.nheld.Load() != 0 {
		t.Fatalf("after releasing every channel: held %v, nheld %d; want nil, 0", s.held, s.nheld.Load())
	}
}
