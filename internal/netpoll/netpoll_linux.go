package netpoll

import (
	"errors"
	"net"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported reports whether this platform has a Poller.
const Supported = true

// Events a socket is armed for. Each is one-shot: after the event the
// socket is disarmed until its owner arms it again, so one goroutine at a
// time handles a socket.
const (
	// Readable is data to read, or the peer gone.
	Readable = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT
	// Writable is room in the socket's send buffer.
	Writable = unix.EPOLLOUT | unix.EPOLLONESHOT
	// Hangup is the socket's end only (epoll reports it, and errors,
	// whatever a socket is armed for).
	Hangup = unix.EPOLLONESHOT
)

// Poller watches sockets, each registered with the value its events are
// delivered with.
type Poller[T comparable] struct {
	epfd   int
	wakefd int // an eventfd that interrupts epoll_wait to stop
	mu     sync.RWMutex
	items  map[int]T // by file descriptor
	closed bool
}

// New returns a Poller; Close releases it once Run has returned.
func New[T comparable]() (*Poller[T], error) {
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
	return &Poller[T]{epfd: epfd, wakefd: wakefd, items: map[int]T{}}, nil
}

// Add registers the socket fd, armed for events, with v.
func (p *Poller[T]) Add(fd int, v T, events uint32) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return net.ErrClosed
	}
	p.items[fd] = v
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.items, fd)
		p.mu.Unlock()
		return err
	}
	return nil
}

// Arm arms the registered socket fd for its next event.
func (p *Poller[T]) Arm(fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// Remove unregisters the socket fd if it is still registered with v. Call
// it before the socket is closed: the descriptor may be reused after.
func (p *Poller[T]) Remove(fd int, v T) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	p.mu.Lock()
	if p.items[fd] == v {
		delete(p.items, fd)
	}
	p.mu.Unlock()
}

// Run waits for events and calls dispatch with the value of each socket
// that has one, until Stop is called. dispatch must not block: it hands
// the event to a goroutine.
func (p *Poller[T]) Run(dispatch func(v T, events uint32)) error {
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
			if v, ok := p.items[fd]; ok {
				dispatch(v, events[i].Events)
			}
		}
		p.mu.RUnlock()
	}
}

// Stop makes Run return; Add fails from now on.
func (p *Poller[T]) Stop() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	one := uint64(1)
	_, _ = unix.Write(p.wakefd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// Close releases the poller's descriptors once Run has returned.
func (p *Poller[T]) Close() {
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}

// Len is the number of registered sockets.
func (p *Poller[T]) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.items)
}
