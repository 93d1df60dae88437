package ws

import (
	"errors"
	"net"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const pollerSupported = true

// pollEvents are the events a connection is armed for: readable, or the
// peer gone. One-shot: after an event the socket is disarmed until the
// reader re-arms it, so one goroutine at a time reads a connection.
const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// poller watches every polled socket with one epoll instance.
type poller struct {
	epfd   int
	wakefd int // an eventfd that interrupts epoll_wait to stop
	mu     sync.RWMutex
	conns  map[int]*Conn // by file descriptor
	closed bool
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	return &poller{epfd: epfd, wakefd: wakefd, conns: map[int]*Conn{}}, nil
}

// add registers c's socket, armed.
func (p *poller) add(c *Conn) error {
	var fd int
	if err := c.rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return net.ErrClosed
	}
	c.fd = fd
	p.conns[fd] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.conns, fd)
		p.mu.Unlock()
		return err
	}
	return nil
}

// rearm arms c's socket for its next event.
func (p *poller) rearm(c *Conn) error {
	ev := unix.EpollEvent{Events: pollEvents, Fd: int32(c.fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
}

// remove unregisters c's socket; it runs before the socket is closed.
func (p *poller) remove(c *Conn) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	p.mu.Lock()
	if p.conns[c.fd] == c {
		delete(p.conns, c.fd)
	}
	p.mu.Unlock()
}

// run waits for events and passes each readable connection to dispatch,
// until stop is called.
func (p *poller) run(dispatch func(*Conn)) error {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		p.mu.RLock()
		for i := range n {
			fd := int(events[i].Fd)
			if fd == p.wakefd {
				if p.closed {
					p.mu.RUnlock()
					return nil
				}
				continue
			}
			if c := p.conns[fd]; c != nil {
				dispatch(c)
			}
		}
		p.mu.RUnlock()
	}
}

// stop makes run return.
func (p *poller) stop() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	one := uint64(1)
	_, _ = unix.Write(p.wakefd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// close releases the poller's descriptors once run has returned.
func (p *poller) close() {
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}

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
		case err != nil || n == 0:
			c.teardown()
			return
		case n < len(*buf):
			budget = 0 // drained, most likely: let epoll say otherwise
		}
	}
	if err := c.srv.poller.rearm(c); err != nil {
		c.teardown()
	}
}

// rawRead reads once from the socket without waiting.
func (c *Conn) rawRead(b []byte) (int, error) {
	var n int
	var errno error
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = unix.Read(int(fd), b)
			if errno != unix.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if n < 0 {
		n = 0
	}
	return n, errno
}

// shutdownFD shuts both directions of a socket down, which wakes its reader.
func shutdownFD(fd int) error { return unix.Shutdown(fd, unix.SHUT_RDWR) }

// iovecs pools the vectors of writev calls.
var iovecs = sync.Pool{New: func() any { v := make([]unix.Iovec, 0, maxIovecs); return &v }}

// maxIovecs is IOV_MAX on Linux.
const maxIovecs = 1024

// writev writes frames with as few writev calls as it takes. With wait,
// it waits (up to the write timeout) while the socket is full; without, it
// stops there with errWouldBlock and returns the frames left to write (the
// first one resliced past what was written; the frames' bytes untouched).
func (c *Conn) writev(frames [][]byte, wait bool) ([][]byte, error) {
	if c.rc == nil {
		return nil, c.writeBuffers(frames)
	}
	if wait {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	}
	vp := iovecs.Get().(*[]unix.Iovec)
	defer func() { clear((*vp)[:cap(*vp)]); *vp = (*vp)[:0]; iovecs.Put(vp) }()
	for len(frames) > 0 {
		iov := (*vp)[:0]
		for _, f := range frames {
			if len(iov) == maxIovecs {
				break
			}
			if len(f) > 0 {
				v := unix.Iovec{Base: &f[0]}
				v.SetLen(len(f))
				iov = append(iov, v)
			}
		}
		if len(iov) == 0 {
			return nil, nil
		}
		if c.srv.writeHook != nil {
			c.srv.writeHook(len(iov))
		}
		var n int
		var errno unix.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			for {
				r, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
				switch {
				case e == unix.EINTR:
					continue
				case e == unix.EAGAIN && wait:
					return false // wait until writable, then try again
				}
				n, errno = int(r), e
				return true
			}
		})
		switch {
		case err != nil:
			return frames, err
		case errno == unix.EAGAIN:
			return frames, errWouldBlock
		case errno != 0:
			return frames, errno
		}
		frames = consume(frames, n)
		if len(frames) > 0 && !wait {
			return frames, errWouldBlock // a short write: the socket is full
		}
	}
	return nil, nil
}
