package nbio

import (
	"io"
	"net"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tcpPair returns the descriptor of a loopback TCP socket whose peer
// drains everything written to it.
func tcpPair(b *testing.B) uintptr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var fd uintptr
	_ = rc.Control(func(f uintptr) { fd = f })
	b.Cleanup(func() { c.Close(); <-drained; ln.Close() })
	return fd
}

// BenchmarkSmallWrite compares the calls that put one 80-byte frame on a
// loopback TCP socket: the socket calls used here against the file calls,
// raw, and the file call through the runtime's syscall bookkeeping.
func BenchmarkSmallWrite(b *testing.B) {
	frame := make([]byte, 80)
	iov := []unix.Iovec{{Base: &frame[0]}}
	iov[0].SetLen(len(frame))
	rawFile := func(trap uintptr) func(fd uintptr) {
		return func(fd uintptr) {
			_, _, _ = unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&frame[0])), uintptr(len(frame)))
		}
	}
	cases := []struct {
		name  string
		write func(fd uintptr)
	}{
		{"send", func(fd uintptr) { Write(fd, frame) }},
		{"sendmsg", func(fd uintptr) { Writev(fd, iov) }},
		{"write-raw", rawFile(unix.SYS_WRITE)},
		{"writev-raw", func(fd uintptr) {
			_, _, _ = unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), 1)
		}},
		{"writev", func(fd uintptr) {
			_, _, _ = unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), 1)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			fd := tcpPair(b)
			for b.Loop() {
				c.write(fd)
			}
		})
	}
}
