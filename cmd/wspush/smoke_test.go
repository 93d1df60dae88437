package main

import (
	"context"
	"testing"
	"time"

	"github.com/wspush/wspush/client"
)

func TestSmokePublishDelivers(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, s.WS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx, "chat"); err != nil {
		t.Fatal(err)
	}
	if err := client.NewAPI(s.URL, "").Publish(ctx, "chat", "hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c.Messages():
		if m.Channel != "chat" || string(m.Data) != `"hello"` {
			t.Fatalf("got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("no message")
	}
}
