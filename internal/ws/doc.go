// Package ws is wspush's WebSocket transport (RFC 6455). It owns the sockets:
// the upgrade handshake and origin check, frame parsing with a read limit,
// the heartbeat, per-connection bounded send queues, write batching and close
// codes. It knows nothing of channels or of the protocol spoken in the frames:
// a Session, supplied by the protocol layer, receives each complete message.
//
// # I/O model
//
// An idle connection holds no goroutine and no buffer. On Linux, every socket
// is registered with one epoll instance (one-shot, level-triggered); when a
// socket becomes readable a short-lived goroutine reads what is there with a
// pooled buffer, hands complete messages to the Session, keeps a partial frame
// if one is pending, and re-arms the socket. Elsewhere, and for connections
// that are not plain TCP, a reader goroutine per connection does the same.
//
// Sending never blocks the caller: Send appends a prepared frame to the
// connection's queue, bounded in messages and bytes, and puts the connection
// in the FIFO of a small pool of flusher goroutines (GOMAXPROCS of them),
// which write everything queued for a connection in one non-blocking writev.
// A connection whose socket is full gets a writer goroutine of its own while
// it drains; connections without the poller always use one. A connection
// whose queue overflows is closed with CloseSlowConsumer; the frames it had
// not yet taken are dropped.
//
// # Ownership
//
// Server.Run owns the poller, the flusher pool and the heartbeat sweeper.
// Every goroutine the package starts (readers, flushers, writers) is counted
// by the Server and waited for by Run. A connection is torn down exactly once, on its read side, after
// which its Session's Closed method runs.
package ws
