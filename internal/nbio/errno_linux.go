package nbio

import "golang.org/x/sys/unix"

// result turns a raw system call's results into a count and an errno: the
// count is 0 when the call failed.
func result(r, _ uintptr, errno unix.Errno) (int, unix.Errno) {
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}
