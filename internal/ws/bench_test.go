package ws

import (
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// drainClient is a raw client that reads and discards what it receives,
// counting bytes, so that a benchmark can wait for every frame to arrive.
type drainClient struct {
	conn net.Conn
	r    io.Reader // reads conn, after the handshake's buffered bytes
	n    atomic.Int64
}

func (d *drainClient) run(wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := d.r.Read(buf)
		d.n.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// benchConns opens n raw connections to a harness and returns their
// server-side Conns and the clients draining them.
func benchConns(b *testing.B, h *harness, n int) ([]*Conn, []*drainClient, *sync.WaitGroup) {
	b.Helper()
	conns := make([]*Conn, n)
	clients := make([]*drainClient, n)
	var wg sync.WaitGroup
	for i := range n {
		rc := dialRaw(b, h.addr, nil)
		conns[i] = h.session(b).c
		clients[i] = &drainClient{conn: rc.nc, r: rc.br}
		wg.Add(1)
		go clients[i].run(&wg)
	}
	return conns, clients, &wg
}

// waitDrained waits until every client has read want bytes.
func waitDrained(b *testing.B, clients []*drainClient, want int64) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, c := range clients {
		for c.n.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("a client read %d of %d bytes", c.n.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// BenchmarkFanoutWrite measures the transport's side of a fan-out: one
// prepared frame sent to every connection per iteration, and written to
// real loopback sockets whose clients read everything. It reports the
// server's cost per delivery and the frames each writev carried: under
// load the flusher pool batches. (The clients run in the same process, on
// the same cores: compare the modes with each other, in one run.)
func BenchmarkFanoutWrite(b *testing.B) {
	for _, mode := range modes {
		for _, n := range []int{1, 100, 1000} {
			b.Run(mode.name+"/conns="+strconv.Itoa(n), func(b *testing.B) {
				var writes, frames atomic.Int64
				h := newHarness(b, Config{Goroutines: mode.goroutines, QueueMaxMessages: 1 << 30, QueueMaxBytes: math.MaxInt},
					withServer(func(s *Server) {
						s.writeHook = func(f int) { writes.Add(1); frames.Add(int64(f)) }
					}))
				conns, clients, wg := benchConns(b, h, n)
				frame := AppendText(nil, make([]byte, 64))
				welcome := int64(0) // nothing was sent before the loop
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					for _, c := range conns {
						c.Send(frame)
					}
				}
				waitDrained(b, clients, welcome+int64(b.N)*int64(len(frame)))
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
				if w := writes.Load(); w > 0 {
					b.ReportMetric(float64(frames.Load())/float64(w), "frames/write")
				}
				h.stop()
				for _, c := range clients {
					c.conn.Close()
				}
				wg.Wait()
			})
		}
	}
}

// BenchmarkSend is the cost of queueing a frame on a connection whose
// writer is busy: the fan-out path's part per subscriber.
func BenchmarkSend(b *testing.B) {
	h := newHarness(b, Config{QueueMaxMessages: 1 << 30, QueueMaxBytes: math.MaxInt})
	conns, clients, wg := benchConns(b, h, 1)
	frame := AppendText(nil, make([]byte, 64))
	b.ReportAllocs()
	for b.Loop() {
		conns[0].Send(frame)
	}
	b.StopTimer()
	h.stop()
	clients[0].conn.Close()
	wg.Wait()
}
