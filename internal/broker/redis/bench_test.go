package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/redis"
	"github.com/wspush/wspush/internal/redistest"
)

// The cost of publishing through Redis from 16 concurrent publishers:
// the broker's pipelined Publish against one PUBLISH round trip per
// message with the same client library. The Redis server runs on the same
// cores: compare the two in one run.

// runningBroker is a broker on a fresh redis-server, running and ready
// until the benchmark ends.
func runningBroker(b *testing.B) (*redis.Broker, context.Context) {
	srv := redistest.Start(b, redistest.Options{})
	br := newBroker(b, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx, wspush.HandlerFunc(func(*wspush.Message) {})) }()
	b.Cleanup(func() { cancel(); <-done })
	for br.Ready() != nil {
	}
	return br, ctx
}

func BenchmarkPublishPipelined(b *testing.B) {
	br, ctx := runningBroker(b)
	for _, opts := range []struct {
		name string
		o    wspush.PublishOptions
	}{{"no-history", wspush.PublishOptions{}}, {"history", keep}} {
		b.Run(opts.name, func(b *testing.B) {
			b.SetParallelism(8) // 16 publishers on 2 CPUs
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := br.Publish(ctx, &wspush.Message{Channel: "bench", Data: []byte(`{"n":1}`)}, opts.o); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkPublishOneRoundTripEach(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr, PoolSize: 16})
	defer c.Close()
	ctx := context.Background()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Publish(ctx, "wspush.ch.{bench}", "v1\np\n0\n\n\n{\"n\":1}").Err(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkHistoryPosition is the read a subscribe to a channel with
// history makes for its reply's position (the newest message, limit 1),
// one call at a time: its latency, on a channel holding 100 messages.
func BenchmarkHistoryPosition(b *testing.B) {
	br, ctx := runningBroker(b)
	for range 100 {
		if _, err := br.Publish(ctx, &wspush.Message{Channel: "h", Data: []byte(`{"n":1}`)}, keep); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.History(ctx, "h", wspush.HistoryQuery{Limit: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
