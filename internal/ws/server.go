package ws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/netpoll"
)

// Defaults for Config. Each is a setting of wspush serve.
const (
	// DefaultReadLimit bounds an inbound message: commands are small, and
	// a limit keeps one client from holding much memory.
	DefaultReadLimit = 64 << 10
	// DefaultPingInterval is how long a connection may be quiet before the
	// server pings it: under the 30-60 s idle timeouts of common proxies.
	DefaultPingInterval = 25 * time.Second
	// DefaultPongTimeout is how long a connection may send nothing at all
	// (no pong, no frame) before it is closed: two missed pings and margin.
	DefaultPongTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds a write that makes no progress: a peer that
	// stops reading for this long is cut off.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultCloseTimeout is how long a closing connection waits for the
	// peer's close frame before it is cut off.
	DefaultCloseTimeout = 3 * time.Second
	// DefaultQueueMaxMessages bounds the frames waiting for a connection's
	// writer; a subscriber this far behind is closed as a slow consumer.
	DefaultQueueMaxMessages = 4096
	// DefaultQueueMaxBytes bounds the bytes waiting for a connection's
	// writer, for the same reason.
	DefaultQueueMaxBytes = 1 << 20
	// handshakeTimeout bounds the write of the 101 response.
	handshakeTimeout = 10 * time.Second
)

// Config holds the transport's settings. Zero fields take the defaults.
type Config struct {
	ReadLimit        int           // largest inbound message, in bytes (close 1009 above)
	PingInterval     time.Duration // ping a connection quiet for this long
	PongTimeout      time.Duration // close a connection silent for this long (4010)
	WriteTimeout     time.Duration // cut off a peer that reads nothing for this long
	CloseTimeout     time.Duration // wait this long for the peer's close frame
	QueueMaxMessages int           // frames queued per connection before 4001
	QueueMaxBytes    int           // bytes queued per connection before 4001
	Origins          Origins       // browser origins allowed besides the server's own
	// Goroutines makes every connection use a reader goroutine instead of
	// the epoll poller. The poller is used only on Linux, for TCP sockets.
	Goroutines bool
}

func (c *Config) setDefaults() {
	setDefault(&c.ReadLimit, DefaultReadLimit)
	setDefault(&c.PingInterval, DefaultPingInterval)
	setDefault(&c.PongTimeout, DefaultPongTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.CloseTimeout, DefaultCloseTimeout)
	setDefault(&c.QueueMaxMessages, DefaultQueueMaxMessages)
	setDefault(&c.QueueMaxBytes, DefaultQueueMaxBytes)
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Server accepts WebSocket connections and runs them. Create it with
// NewServer, start Run, then call Upgrade from an HTTP handler.
type Server struct {
	cfg    Config
	logger *slog.Logger

	running  atomic.Bool
	started  chan struct{} // closed once Run accepts connections
	stopping atomic.Bool
	// upgradeMu orders upgrades with Shutdown and the end of Run: Upgrade
	// checks that connections are still accepted, registers its own and
	// starts reading it under the read lock; running and stopping change
	// (for good) under the write lock, so no connection registers after.
	upgradeMu sync.RWMutex
	poller    *netpoll.Poller[*Conn] // nil when every connection has a reader goroutine
	flush     *flusher               // writes polled connections; nil with the poller
	wg        sync.WaitGroup         // readers and writers

	nextID    atomic.Uint64
	shards    [connShards]connShard
	count     atomic.Int64
	drained   chan struct{} // closed when count reaches zero during Shutdown
	drainOnce sync.Once
	accepted  atomic.Uint64
	overflows atomic.Uint64
	closesMu  sync.Mutex
	closes    map[int]uint64

	// writeHook, set by tests before Run, is called before each write call
	// of a writer (one writev) with the number of frames it carries.
	writeHook func(frames int)
}

const connShards = 16

type connShard struct {
	mu    sync.Mutex
	conns map[*Conn]struct{}
}

// NewServer returns a Server with cfg; it starts nothing.
func NewServer(logger *slog.Logger, cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, logger: logger, closes: map[int]uint64{}, drained: make(chan struct{}), started: make(chan struct{})}
	for i := range s.shards {
		s.shards[i].conns = map[*Conn]struct{}{}
	}
	return s
}

// Run runs the poller and the heartbeat until ctx is done, then waits for
// every goroutine the Server started. Call Shutdown first to close the
// connections gracefully.
func (s *Server) Run(ctx context.Context) error {
	var pollErr chan error
	if !s.cfg.Goroutines && netpoll.Supported {
		p, err := netpoll.New[*Conn]()
		if err != nil {
			return fmt.Errorf("start poller: %w", err)
		}
		s.poller = p
		pollErr = make(chan error, 1)
		go func() { pollErr <- p.Run(s.dispatch) }()
		s.flush = newFlusher()
		for range runtime.GOMAXPROCS(0) {
			s.wg.Add(1)
			go s.runFlusher()
		}
	}
	s.running.Store(true)
	close(s.started)

	tick := min(s.cfg.PingInterval, s.cfg.PongTimeout, s.cfg.CloseTimeout) / 4
	tick = min(max(tick, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-t.C:
			s.sweep(now.UnixNano())
		case err = <-pollErr:
			break loop
		}
	}
	s.upgradeMu.Lock()
	s.running.Store(false)
	s.upgradeMu.Unlock()
	s.abortAll()
	if s.flush != nil {
		s.flush.stop()
	}
	if s.poller != nil {
		s.poller.Stop()
		if pollErr != nil && err == nil {
			err = <-pollErr
		}
		s.poller.Close()
	}
	s.wg.Wait()
	return err
}

// Started is closed once Run accepts connections.
func (s *Server) Started() <-chan struct{} { return s.started }

// dispatch reads a connection the poller found readable.
func (s *Server) dispatch(c *Conn, _ uint32) {
	s.wg.Add(1)
	go c.onReadable()
}

// Upgrade checks the origin and the handshake, takes the connection over
// from net/http and answers 101. It then calls open for the Session (open
// may Send frames, which go out first, and may Close), and starts reading.
// An error means nothing was written: the caller writes the HTTP error.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, open func(*Conn) Session) error {
	if !s.running.Load() || s.stopping.Load() {
		return wspush.Errorf(wspush.ErrUnavailable, "server is shutting down")
	}
	if !s.cfg.Origins.Allowed(r) {
		return wspush.Errorf(wspush.ErrForbidden, "origin not allowed: "+r.Header.Get("Origin"))
	}
	accept, err := checkHandshake(w, r)
	if err != nil {
		return err
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return fmt.Errorf("%w: hijack: %v", wspush.ErrInternal, err)
	}
	c := &Conn{srv: s, nc: nc, fd: -1, id: s.nextID.Add(1)}
	c.lastRead.Store(time.Now().UnixNano())
	_ = nc.SetDeadline(time.Time{})
	_ = nc.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	_, err = nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"))
	_ = nc.SetWriteDeadline(time.Time{})
	if err != nil {
		_ = nc.Close()
		s.logger.Debug("websocket handshake write failed", "remote", nc.RemoteAddr(), "err", err)
		return nil
	}
	// Frames the client sent right after its handshake sit in net/http's buffer.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early = make([]byte, n)
		_, _ = brw.Reader.Read(early)
	}
	if tc, ok := nc.(*net.TCPConn); ok && s.poller != nil {
		if rc, err := tc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	s.upgradeMu.RLock()
	defer s.upgradeMu.RUnlock()
	if !s.running.Load() || s.stopping.Load() {
		// Shutdown or the end of Run came during the handshake.
		_, _ = nc.Write(closeFrame(CloseGoingAway, "server shutting down"))
		_ = nc.Close()
		return nil
	}
	s.register(c)
	c.readMu.Lock()
	c.session = open(c)
	if len(early) > 0 {
		c.feed(early)
	}
	c.readMu.Unlock()
	s.startReading(c)
	return nil
}

// startReading hands c to the poller, or to a reader goroutine.
func (s *Server) startReading(c *Conn) {
	if c.rc != nil {
		_ = c.rc.Control(func(fd uintptr) { c.fd = int(fd) })
		if err := s.poller.Add(c.fd, c, netpoll.Readable); err == nil {
			return
		}
		c.fd = -1
	}
	s.wg.Add(1)
	go c.readLoop()
}

// readLoop is the reader goroutine of a connection that is not polled.
func (c *Conn) readLoop() {
	defer c.srv.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := c.nc.Read(buf)
		c.readMu.Lock()
		if c.torn { // torn down meanwhile (Run's end): the session is closed
			c.readMu.Unlock()
			return
		}
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			c.feed(buf[:n])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && c.drainAfterEOF() {
				c.mu.Lock()
				drained := c.drained
				c.mu.Unlock()
				c.readMu.Unlock()
				if drained != nil {
					<-drained
				}
				c.readMu.Lock()
			}
			c.teardown()
			c.readMu.Unlock()
			return
		}
		c.readMu.Unlock()
	}
}

func (s *Server) shard(c *Conn) *connShard { return &s.shards[c.id%connShards] }

func (s *Server) register(c *Conn) {
	sh := s.shard(c)
	sh.mu.Lock()
	sh.conns[c] = struct{}{}
	sh.mu.Unlock()
	s.count.Add(1)
	s.accepted.Add(1)
}

func (s *Server) unregister(c *Conn, code int) {
	sh := s.shard(c)
	sh.mu.Lock()
	delete(sh.conns, c)
	sh.mu.Unlock()
	s.closesMu.Lock()
	s.closes[code]++
	s.closesMu.Unlock()
	if s.count.Add(-1) == 0 && s.stopping.Load() {
		s.closeDrained()
	}
}

func (s *Server) closeDrained() { s.drainOnce.Do(func() { close(s.drained) }) }

// each calls f for every connection; f must not block.
func (s *Server) each(f func(c *Conn)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for c := range sh.conns {
			f(c)
		}
		sh.mu.Unlock()
	}
}

// sweep runs the heartbeat: it pings quiet connections, closes silent ones
// and cuts off those whose close handshake timed out.
func (s *Server) sweep(now int64) {
	ping, timeout := int64(s.cfg.PingInterval), int64(s.cfg.PongTimeout)
	s.each(func(c *Conn) {
		c.mu.Lock()
		state, deadline := c.state, c.closeDeadline
		c.mu.Unlock()
		switch state {
		case stateOpen:
			last := c.lastRead.Load()
			pinged := c.lastPing > last // a ping is out, unanswered
			switch {
			case now-last >= timeout && pinged && now-c.lastPing >= timeout-ping:
				// Silent for the whole timeout, and a ping had time to be
				// answered: a late sweep never closes an unpinged connection.
				c.Close(CloseHeartbeatTimeout, "heartbeat timeout")
			case now-last >= ping && !pinged:
				c.lastPing = now
				c.Send(pingFrame)
			}
		case stateClosing, stateDone:
			// Done: the close frame is out, the peer's is late. Closing
			// with a deadline: a drain after EOF that takes too long.
			if deadline != 0 && now >= deadline {
				c.abort()
			}
		}
	})
}

// Shutdown closes every connection with CloseGoingAway, after the frames
// already queued, and waits until all are gone or ctx is done, when the rest
// are cut off. New upgrades are refused from the start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.upgradeMu.Lock() // upgrades under way register before this, later ones not at all
	s.stopping.Store(true)
	s.upgradeMu.Unlock()
	s.each(func(c *Conn) { c.Close(CloseGoingAway, "server shutting down") })
	if s.count.Load() == 0 {
		return nil
	}
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		s.abortAll()
		return ctx.Err()
	}
}

// abortAll cuts off every connection and tears down those whose read side
// will not run again.
func (s *Server) abortAll() {
	var all []*Conn
	s.each(func(c *Conn) { all = append(all, c) })
	for _, c := range all {
		c.abort()
	}
	if s.running.Load() {
		return // the read side tears them down
	}
	for _, c := range all {
		c.readMu.Lock()
		c.teardown()
		c.readMu.Unlock()
	}
}

// Stats is a snapshot of the transport's counters.
type Stats struct {
	Connections int64          // open now
	Accepted    uint64         // upgrades since start
	Overflows   uint64         // connections closed as slow consumers
	Closes      map[int]uint64 // connections gone, by close code (1006: no close frame)
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.closesMu.Lock()
	closes := make(map[int]uint64, len(s.closes))
	for k, v := range s.closes {
		closes[k] = v
	}
	s.closesMu.Unlock()
	return Stats{
		Connections: s.count.Load(),
		Accepted:    s.accepted.Load(),
		Overflows:   s.overflows.Load(),
		Closes:      closes,
	}
}

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.stopping.Load() }
