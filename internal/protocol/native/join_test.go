package native

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
)

// deliveringBroker is a broker whose subscription goes live, delivers a
// message, and then fails, as a Redis SUBSCRIBE whose confirmation comes
// too late does.
type deliveringBroker struct {
	h *hub.Hub
}

func (b *deliveringBroker) Publish(context.Context, *wspush.Message, wspush.PublishOptions) (wspush.StreamPosition, error) {
	return wspush.StreamPosition{}, nil
}

func (b *deliveringBroker) Subscribe(_ context.Context, channel string) error {
	b.h.HandleMessage(&wspush.Message{Channel: channel, Data: []byte(`"during"`)})
	return errors.New("broker down")
}

func (b *deliveringBroker) Unsubscribe(context.Context, string) error { return nil }

// TestFailedJoinDropsItsPushes: a message delivered while a subscription
// that then fails was set up reaches the session, which must neither send
// it (the session has no connection here: a send would panic) nor keep it.
func TestFailedJoinDropsItsPushes(t *testing.T) {
	b := &deliveringBroker{}
	b.h = hub.New(b)
	s := &session{proto: New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{}, b.h)}
	err := s.join(context.Background(), "a", wspush.ChannelOptions{})
	if err == nil {
		t.Fatal("join succeeded; want the broker's failure")
	}
	if s.held != nil || s.nwatch.Load() != 0 {
		t.Fatalf("after a failed join: held %v, nwatch %d; want nil, 0", s.held, s.nwatch.Load())
	}
	if _, ok := s.channels["a"]; ok {
		t.Fatal("a failed join left the channel in the session's list")
	}
	if n := b.h.Subscribers("a"); n != 0 {
		t.Fatalf("hub subscribers of a after a failed join: %d, want 0", n)
	}
}
