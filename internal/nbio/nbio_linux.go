//go:build linux && !386 && !s390x

package nbio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read reads into p from the non-blocking socket fd, with recvfrom(2). It
// returns unix.EAGAIN when there is nothing to read, and 0 bytes without an
// error at the end of the stream.
func Read(fd uintptr, p []byte) (int, unix.Errno) {
	return result(unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0, 0, 0))
}

// Write writes p to the non-blocking socket fd, with sendto(2). It may write
// less than len(p), and returns unix.EAGAIN when the socket's send buffer
// is full. A peer gone is unix.EPIPE, without a SIGPIPE.
func Write(fd uintptr, p []byte) (int, unix.Errno) {
	return result(unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0))
}

// Writev writes the buffers of iov, in order, to the non-blocking socket
// fd with one sendmsg(2). iov holds at most IOV_MAX (1,024) entries. Like
// Write, it may write only part.
func Writev(fd uintptr, iov []unix.Iovec) (int, unix.Errno) {
	var h unix.Msghdr
	h.Iov = unsafe.SliceData(iov)
	h.SetIovlen(len(iov))
	return result(unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&h)), unix.MSG_NOSIGNAL))
}

// Recvmsg reads into p from the non-blocking socket fd with recvmsg(2),
// and the control messages the socket has (such as receive timestamps)
// into oob. It returns the bytes read into each; unix.EAGAIN when there is
// nothing to read.
func Recvmsg(fd uintptr, p, oob []byte) (n, oobn int, errno unix.Errno) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var h unix.Msghdr
	h.Iov = &iov
	h.SetIovlen(1)
	if len(oob) > 0 {
		h.Control = &oob[0]
		h.SetControllen(len(oob))
	}
	n, errno = result(unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&h)), 0))
	if errno != 0 {
		return 0, 0, errno
	}
	return n, int(h.Controllen), 0
}
