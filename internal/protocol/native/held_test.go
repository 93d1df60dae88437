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
	s.release("a", wspush.StreamPosition{})
	if s.held == nil || s.nwatch.Load() != 1 {
		t.Fatalf("after releasing one of two channels: held %v, nwatch %d", s.held, s.nwatch.Load())
	}
	s.release("b", wspush.StreamPosition{})
	if s.held != nil || s.nwatch.Load() != 0 {
		t.Fatalf("after releasing every channel: held %v, nwatch %d; want nil, 0", s.held, s.nwatch.Load())
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
	if _, ok := s.held["a"]; ok || s.nwatch.Load() != 1 {
		t.Fatalf("after discarding a: held %v, nwatch %d; want only b", s.held, s.nwatch.Load())
	}
	s.discard("a") // twice: nothing more
	if s.nwatch.Load() != 1 {
		t.Fatalf("a second discard changed nwatch to %d", s.nwatch.Load())
	}
	s.discard("b")
	if s.held != nil || s.nwatch.Load() != 0 {
		t.Fatalf("after discarding every channel: held %v, nwatch %d; want nil, 0", s.held, s.nwatch.Load())
	}
}

// TestFloorDropsLatePushes: after a subscription that began at a position,
// a push at or below it (late: the history had it) is dropped, without
// reaching the connection, and the floor stays until a push past it;
// unsubscribing forgets it.
func TestFloorDropsLatePushes(t *testing.T) {
	s := &session{} // no connection: a push that got through would panic
	s.hold("a")
	s.release("a", wspush.StreamPosition{Offset: 5, Epoch: "E"})
	if len(s.floors) != 1 || s.nwatch.Load() != 1 {
		t.Fatalf("after a release at 5: floors %v, nwatch %d", s.floors, s.nwatch.Load())
	}
	for _, off := range []uint64{4, 5} {
		if !s.send(&wspush.Message{Channel: "a", Offset: off, Epoch: "E"}, []byte("late"), false) {
			t.Fatalf("push %d refused", off)
		}
	}
	if len(s.floors) != 1 {
		t.Fatalf("floors %v after late pushes, want the floor kept", s.floors)
	}
	s.hold("b")
	s.release("b", wspush.StreamPosition{}) // no history: no floor
	if len(s.floors) != 1 || s.nwatch.Load() != 1 {
		t.Fatalf("a channel without history left a floor: %v, nwatch %d", s.floors, s.nwatch.Load())
	}
	s.heldMu.Lock()
	s.dropFloorLocked("a")
	s.heldMu.Unlock()
	if s.floors != nil || s.nwatch.Load() != 0 {
		t.Fatalf("after dropping the floor: %v, nwatch %d; want nil, 0", s.floors, s.nwatch.Load())
	}
}
