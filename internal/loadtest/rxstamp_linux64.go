//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le)

package loadtest

import (
	"encoding/binary"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/nbio"
)

// stampedReader reads a TCP socket with recvmsg and SO_TIMESTAMPNS, so
// that each read also returns when the kernel received the data: for
// loopback, the moment the server's write reached the client's socket,
// before the client's reader goroutine got a CPU. It reads through the
// runtime's poller (syscall.RawConn), so deadlines and Close work as for
// conn.Read; it does not allocate, and its recvmsg is a raw system call
// (package nbio), as the server's reads are, so that the client's reads
// cost no more than they must.
type stampedReader struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // s.recv, bound once
	p   []byte
	oob [64]byte
	n   int
	ts  int64 // unix ns; 0 when the kernel sent none
	err error
}

// newStampedReader returns a reader of c with kernel receive timestamps,
// or nil when c is not a TCP socket or the option cannot be set.
func newStampedReader(c net.Conn) *stampedReader {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return nil
	}
	s := &stampedReader{rc: rc}
	s.fn = s.recv
	return s
}

// read reads into p and returns the byte count and the kernel's receive
// time of the most recent packet it read from (0 if unknown).
func (s *stampedReader) read(p []byte) (int, int64, error) {
	s.p, s.n, s.ts, s.err = p, 0, 0, nil
	if err := s.rc.Read(s.fn); err != nil {
		return 0, 0, err
	}
	return s.n, s.ts, s.err
}

func (s *stampedReader) recv(fd uintptr) bool {
	n, oobn, errno := nbio.Recvmsg(fd, s.p, s.oob[:])
	for errno == unix.EINTR {
		n, oobn, errno = nbio.Recvmsg(fd, s.p, s.oob[:])
	}
	switch {
	case errno == unix.EAGAIN:
		return false // not readable yet: the poller waits and calls again
	case errno != 0:
		s.err = errno
	case n == 0 && len(s.p) > 0:
		s.err = io.EOF
	default:
		s.n, s.ts = n, parseRxStamp(s.oob[:oobn])
	}
	return true
}

// parseRxStamp finds an SCM_TIMESTAMPNS control message (a struct
// timespec) among the control messages in oob and returns it in unix ns.
func parseRxStamp(oob []byte) int64 {
	const hdr = unix.SizeofCmsghdr // len (8), level (4), type (4) on 64-bit Linux
	for len(oob) >= hdr {
		l := int(binary.NativeEndian.Uint64(oob))
		level := int32(binary.NativeEndian.Uint32(oob[8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:]))
		if l < hdr || l > len(oob) {
			return 0
		}
		if level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && l >= hdr+16 {
			sec := int64(binary.NativeEndian.Uint64(oob[hdr:]))
			nsec := int64(binary.NativeEndian.Uint64(oob[hdr+8:]))
			return sec*1e9 + nsec
		}
		oob = oob[min(cmsgAlign(l), len(oob)):]
	}
	return 0
}

func cmsgAlign(l int) int { return (l + 7) &^ 7 }
