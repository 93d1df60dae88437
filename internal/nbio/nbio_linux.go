package nbio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read reads into p from the non-blocking socket fd, with read(2). It
// returns unix.EAGAIN when there is nothing to read.
func Read(fd uintptr, p []byte) (int, unix.Errno) {
	return result(unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p))))
}

// Write writes p to the non-blocking socket fd, with write(2). It may
// write less than len(p), and returns unix.EAGAIN when the socket's send
// buffer is full.
func Write(fd uintptr, p []byte) (int, unix.Errno) {
	return result(unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p))))
}

// Writev writes the buffers of iov, in order, to the non-blocking socket
// fd with one writev(2). iov must not be empty and holds at most IOV_MAX
// (1,024) entries. Like Write, it may write only part.
func Writev(fd uintptr, iov []unix.Iovec) (int, unix.Errno) {
	return result(unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov))))
}

func result(r, _ uintptr, errno unix.Errno) (int, unix.Errno) {
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}
