package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Supported reports whether this platform has a Server; without one, serve
// the listener with net/http alone.
const Supported = true

// Server accepts the connections of a listener, serves the fast requests
// itself and hands the rest to net/http through Listener. Create it with
// NewServer, serve Listener with an http.Server, and run Run.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	ln      net.Listener
	handoff *handoff
	started chan struct{} // closed once Run accepts

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping atomic.Bool
	wg       sync.WaitGroup // accept loop and connection goroutines, waited for by Run

	date      atomic.Pointer[string] // the Date header, refreshed by Run
	served    atomic.Uint64
	handedOff atomic.Uint64
}

// NewServer returns a Server for ln; it starts nothing.
func NewServer(logger *slog.Logger, ln net.Listener, cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, logger: logger, ln: ln, handoff: newHandoff(ln.Addr()), conns: map[*conn]struct{}{}, started: make(chan struct{})}
	s.setDate(time.Now())
	return s
}

// Listener returns the connections handed to net/http: serve it with an
// http.Server. Closing it (as http.Server.Shutdown does) stops the hand-off.
func (s *Server) Listener() net.Listener { return s.handoff }

// Started is closed once Run accepts connections.
func (s *Server) Started() <-chan struct{} { return s.started }

// Stats returns the Server's counts so far.
func (s *Server) Stats() Stats {
	return Stats{Served: s.served.Load(), HandedOff: s.handedOff.Load()}
}

// Run accepts and serves until ctx is done or the listener fails, then
// closes the listener and every connection still served here, and waits
// for every goroutine it started. Call Shutdown first to let requests in
// flight finish.
func (s *Server) Run(ctx context.Context) error {
	acceptErr := make(chan error, 1)
	s.wg.Go(func() { acceptErr <- s.acceptLoop(ctx) })
	close(s.started)

	tick := min(s.cfg.ReadHeaderTimeout, s.cfg.IdleTimeout) / 4
	t := time.NewTicker(min(max(tick, 10*time.Millisecond), time.Second))
	defer t.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-t.C:
			s.setDate(now)
			s.sweep(now.UnixNano())
		case err = <-acceptErr:
			if err != nil {
				break loop
			}
			acceptErr = nil // closed by Shutdown: serve what is left
		}
	}
	s.stopping.Store(true)
	_ = s.ln.Close()
	s.handoff.Close()
	s.closeConns(true)
	s.wg.Wait()
	return err
}

// Shutdown stops accepting, closes the idle connections, and waits until
// the requests in flight are answered and their connections closed, or
// ctx is done. Run still has to return.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	_ = s.ln.Close()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeConns(false) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.closeConns(true)
			return ctx.Err()
		case <-t.C:
		}
	}
}

// snapshot returns the connections served or watched here.
func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	return list
}

// closeConns shuts down the connections that wait for a request (every
// one with force) and returns how many there are still.
func (s *Server) closeConns(force bool) int {
	list := s.snapshot()
	for _, c := range list {
		if force || c.idle.Load() {
			c.abort()
		}
	}
	return len(list)
}

// acceptLoop accepts until the listener is closed.
func (s *Server) acceptLoop(ctx context.Context) error {
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors, most likely: wait and retry, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger.Warn("accept failed; retrying", "err", err, "in", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		c, err := newConn(s, nc)
		if err != nil {
			s.handedOff.Add(1)
			s.handoff.give(nc)
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		if s.stopping.Load() {
			c.abort()
		}
		s.wg.Go(func() { c.run(ctx) })
	}
}

// forget drops c from the connections served here.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// sweep shuts down the connections past their deadline: a request not
// whole within ReadHeaderTimeout, no request within IdleTimeout.
func (s *Server) sweep(now int64) {
	for _, c := range s.snapshot() {
		if d := c.deadline.Load(); d != 0 && now > d {
			c.abort()
		}
	}
}

func (s *Server) setDate(now time.Time) {
	d := now.UTC().Format(http.TimeFormat)
	s.date.Store(&d)
}
