package native

import (
	"testing"

	"github.com/wspush/wspush"
)

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

// TestDiscardDropsHeldPushes: pushes held during a subscription that then
// fails are dropped, and later pushes of the channel are not held.
func TestDiscardDropsHeldPushes(t *testing.T) {
	s := &session{}
	s.hold("a")
	s.hold("b")
	if !s.send(&wspush.Message{Channel: "a"}, []byte("push"), false) {
		t.Fatal("a push during the subscription was refused")
	}
	if got := len(s.held["a"]); got != 1 {
		t.Fatalf("held pushes of a: %d, want 1", got)
	}
	s.discard("a")
	if _, ok := s.held["a"]; ok || s.nheld.Load() != 1 {
		t.Fatalf("after discarding a: held %v, nheld %d; want only b", s.held, s.nheld.Load())
	}
	s.discard("a") // twice: nothing more
	if s.nheld.Load() != 1 {
		t.Fatalf("a second discard changed nheld to %d", s.nheld.Load())
	}
	s.discard("b")
	if s.held != nil || s.nheld.Load() != 0 {
		t.Fatalf("after discarding every channel: held %v, nheld %d; want nil, 0", s.held, s.nheld.Load())
	}
}
