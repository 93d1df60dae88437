package memory_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/memory"
	"github.com/wspush/wspush/internal/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Suite{
		New: func(*testing.T) brokertest.NewNode {
			return func(*testing.T) wspush.Broker { return memory.New() }
		},
		SingleNode: true,
	})
}

func TestPublishBeforeRunIsUnavailable(t *testing.T) {
	b := memory.New()
	_, err := b.Publish(context.Background(), &wspush.Message{Channel: "a", Data: []byte("1")}, wspush.PublishOptions{})
	if !errors.Is(err, wspush.ErrUnavailable) {
		t.Fatalf("Publish before Run = %v, want ErrUnavailable", err)
	}
	if b.Ready() == nil {
		t.Fatal("Ready() = nil before Run")
	}
}
