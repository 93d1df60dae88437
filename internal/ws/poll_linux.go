package ws

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/nbio"
	"github.com/wspush/wspush/internal/netpoll"
)

// onReadable reads what the socket holds, feeds it to the frame parser and
// re-arms the socket. It runs in its own goroutine, one per readiness event.
func (c *Conn) onReadable() {
	defer c.srv.wg.Done()
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.torn {
		return
	}
	buf := getReadBuf()
	defer putReadBuf(buf)
	for budget := 4 * readBufSize; budget > 0; {
		n, err := c.rawRead(*buf)
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			c.feed((*buf)[:n])
			budget -= n
		}
		switch {
		case err == unix.EAGAIN:
			budget = 0
		case err == nil && n == 0 && c.drainAfterEOF():
			// Wait for the drain's end: abort shuts the socket down,
			// and the hang-up, which epoll always reports, calls this
			// again.
			if err := c.srv.poller.Arm(c.fd, netpoll.Hangup); err != nil {
				c.teardown()
			}
			return
		case err != nil || n == 0:
			c.teardown()
			return
		case n < len(*buf):
			budget = 0 // drained, most likely: let epoll say otherwise
		}
	}
	if err := c.srv.poller.Arm(c.fd, netpoll.Readable); err != nil {
		c.teardown()
	}
}

// rawRead reads once from the socket without waiting.
func (c *Conn) rawRead(b []byte) (int, error) {
	var n int
	var errno unix.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = nbio.Read(fd, b)
			if errno != unix.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	}
	return n, nil
}

// shutdownFD shuts both directions of a socket down, which wakes its reader.
func shutdownFD(fd int) error { return unix.Shutdown(fd, unix.SHUT_RDWR) }

// vectorWriter is the state of one writev call: the vector and the
// callback of RawConn.Write with its results. Writers are pooled, and the
// callback is a method value made once per writer, so a write allocates
// nothing.
type vectorWriter struct {
	iov   []unix.Iovec
	wait  bool
	n     int
	errno unix.Errno
	fn    func(fd uintptr) bool
}

// writers pools vectorWriters.
var writers = sync.Pool{New: func() any {
	w := &vectorWriter{iov: make([]unix.Iovec, 0, maxIovecs)}
	w.fn = w.write
	return w
}}

// maxIovecs is IOV_MAX on Linux.
const maxIovecs = 1024

// write is w.fn: one writev of w.iov, retried on EINTR, and with wait,
// on EAGAIN once the socket is writable.
func (w *vectorWriter) write(fd uintptr) bool {
	for {
		n, e := nbio.Writev(fd, w.iov)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN && w.wait:
			return false // wait until writable, then try again
		}
		w.n, w.errno = n, e
		return true
	}
}

// writev writes frames with as few writev calls as it takes. With wait,
// it waits (up to the write timeout) while the socket is full; without, it
// stops there with errWouldBlock and returns the frames left to write (the
// first one resliced past what was written; the frames' bytes untouched).
func (c *Conn) writev(frames [][]byte, wait bool) ([][]byte, error) {
	if c.rc == nil {
		return nil, c.writeBuffers(frames)
	}
	if wait {
		// The deadline is renewed before every write below, so that it
		// bounds a write that makes no progress, not the whole queue;
		// and it is cleared after, or the flusher's non-blocking writes
		// would fail on it once it had passed.
		defer func() { _ = c.nc.SetWriteDeadline(time.Time{}) }()
	}
	w := writers.Get().(*vectorWriter)
	w.wait = wait
	used := 0 // entries to clear before the writer goes back: their pointers pin frames
	defer func() { clear(w.iov[:used]); w.iov = w.iov[:0]; writers.Put(w) }()
	for len(frames) > 0 {
		w.iov = w.iov[:0]
		size := 0 // bytes in w.iov
		for _, f := range frames {
			if len(w.iov) == maxIovecs {
				break
			}
			if len(f) > 0 {
				v := unix.Iovec{Base: &f[0]}
				v.SetLen(len(f))
				w.iov = append(w.iov, v)
				size += len(f)
			}
		}
		used = max(used, len(w.iov))
		if len(w.iov) == 0 {
			return nil, nil
		}
		if c.srv.writeHook != nil {
			c.srv.writeHook(len(w.iov))
		}
		if wait {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		}
		err := c.rc.Write(w.fn)
		switch {
		case err != nil:
			return frames, err
		case w.errno == unix.EAGAIN:
			return frames, errWouldBlock
		case w.errno != 0:
			return frames, w.errno
		}
		frames = consume(frames, w.n)
		if w.n < size && !wait {
			return frames, errWouldBlock // a short write: the socket is full
		}
	}
	return nil, nil
}
