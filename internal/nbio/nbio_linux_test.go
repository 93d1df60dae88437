package nbio

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// pair returns the two ends of a connected, non-blocking stream socket pair.
func pair(t *testing.T) (a, b uintptr) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return uintptr(fds[0]), uintptr(fds[1])
}

func TestReadEmptySocketSaysEAGAIN(t *testing.T) {
	a, _ := pair(t)
	n, errno := Read(a, make([]byte, 16))
	if n != 0 || errno != unix.EAGAIN {
		t.Fatalf("Read = %d, %v; want 0, EAGAIN", n, errno)
	}
}

func TestWriteThenRead(t *testing.T) {
	a, b := pair(t)
	if n, errno := Write(a, []byte("hello")); n != 5 || errno != 0 {
		t.Fatalf("Write = %d, %v; want 5, no error", n, errno)
	}
	buf := make([]byte, 16)
	n, errno := Read(b, buf)
	if errno != 0 || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v; want \"hello\"", buf[:n], errno)
	}
}

func TestWritevKeepsOrder(t *testing.T) {
	a, b := pair(t)
	parts := [][]byte{[]byte("one "), []byte("two "), []byte("three")}
	iov := make([]unix.Iovec, len(parts))
	for i, p := range parts {
		iov[i].Base = &p[0]
		iov[i].SetLen(len(p))
	}
	if n, errno := Writev(a, iov); n != 13 || errno != 0 {
		t.Fatalf("Writev = %d, %v; want 13, no error", n, errno)
	}
	buf := make([]byte, 32)
	n, _ := Read(b, buf)
	if got := string(buf[:n]); got != "one two three" {
		t.Fatalf("read %q; want \"one two three\"", got)
	}
}

// A full socket makes a write stop short, then refuse with EAGAIN, instead
// of waiting; what was written arrives intact.
func TestWriteToFullSocketDoesNotWait(t *testing.T) {
	a, b := pair(t)
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	written := 0
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("the socket never filled up")
		}
		n, errno := Write(a, chunk)
		if errno == unix.EAGAIN {
			break
		}
		if errno != 0 {
			t.Fatalf("Write: %v", errno)
		}
		written += n
	}
	buf := make([]byte, 64<<10)
	read := 0
	for read < written {
		n, errno := Read(b, buf)
		if errno != 0 {
			t.Fatalf("Read after %d of %d bytes: %v", read, written, errno)
		}
		if bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 'x' }) >= 0 {
			t.Fatal("read bytes that were not written")
		}
		read += n
	}
	if n, errno := Read(b, buf); errno != unix.EAGAIN {
		t.Fatalf("read %d bytes more than the %d written (%v)", n, written, errno)
	}
}

func TestErrorsComeBackAsErrno(t *testing.T) {
	a, b := pair(t)
	if err := unix.Shutdown(int(b), unix.SHUT_RDWR); err != nil {
		t.Fatal(err)
	}
	if _, errno := Write(a, []byte("x")); errno != unix.EPIPE {
		t.Fatalf("Write to a peer that shut down: %v; want EPIPE", errno) // (Go ignores the SIGPIPE either way)
	}
	if n, errno := Read(^uintptr(0), make([]byte, 1)); n != 0 || errno != unix.EBADF {
		t.Fatalf("Read of a bad descriptor = %d, %v; want 0, EBADF", n, errno)
	}
}

// Recvmsg returns the data and the control messages: here the sender's
// credentials, which a unix socket with SO_PASSCRED attaches.
func TestRecvmsgReturnsControlMessages(t *testing.T) {
	a, b := pair(t)
	if err := unix.SetsockoptInt(int(b), unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		t.Fatal(err)
	}
	if n, _, errno := Recvmsg(b, make([]byte, 8), make([]byte, 64)); n != 0 || errno != unix.EAGAIN {
		t.Fatalf("Recvmsg of an empty socket = %d, %v; want 0, EAGAIN", n, errno)
	}
	Write(a, []byte("hi"))
	p, oob := make([]byte, 8), make([]byte, 64)
	n, oobn, errno := Recvmsg(b, p, oob)
	if errno != 0 || string(p[:n]) != "hi" {
		t.Fatalf("Recvmsg = %q, %v; want \"hi\"", p[:n], errno)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v (%v), want one", msgs, err)
	}
	cred, err := unix.ParseUnixCredentials(&msgs[0])
	if err != nil || int(cred.Pid) != unix.Getpid() {
		t.Fatalf("credentials %+v (%v), want this process's", cred, err)
	}
}
