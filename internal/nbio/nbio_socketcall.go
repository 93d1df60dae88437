//go:build linux && (386 || s390x)

package nbio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// On 386 and s390x, Linux before 4.3 has the socket calls only through
// socketcall(2), so these use the file calls, which every kernel has.

// Read reads into p from the non-blocking socket fd, with read(2).
func Read(fd uintptr, p []byte) (int, unix.Errno) {
	return result(unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p))))
}

// Write writes p to the non-blocking socket fd, with write(2).
func Write(fd uintptr, p []byte) (int, unix.Errno) {
	return result(unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p))))
}

// Writev writes the buffers of iov to the non-blocking socket fd, with
// writev(2).
func Writev(fd uintptr, iov []unix.Iovec) (int, unix.Errno) {
	return result(unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov))))
}

// Recvmsg reads into p and oob with recvmsg(2), through the x/sys/unix
// wrapper (socketcall where the kernel needs it).
func Recvmsg(fd uintptr, p, oob []byte) (n, oobn int, errno unix.Errno) {
	n, oobn, _, _, err := unix.Recvmsg(int(fd), p, oob, unix.MSG_DONTWAIT)
	if e, ok := err.(unix.Errno); ok {
		return 0, 0, e
	}
	return n, oobn, 0
}
