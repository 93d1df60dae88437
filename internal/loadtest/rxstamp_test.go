//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le)

package loadtest

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const rxStampsSupported = true

func TestParseRxStamp(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.SizeofCmsghdr, cmsgAlign(unix.SizeofCmsghdr+len(data)))
		binary.NativeEndian.PutUint64(b, uint64(unix.SizeofCmsghdr+len(data)))
		binary.NativeEndian.PutUint32(b[8:], uint32(level))
		binary.NativeEndian.PutUint32(b[12:], uint32(typ))
		b = append(b, data...)
		return b[:cap(b)]
	}
	ts := binary.NativeEndian.AppendUint64(nil, 1795712345)
	ts = binary.NativeEndian.AppendUint64(ts, 123456789)
	other := cmsg(unix.SOL_SOCKET, unix.SCM_RIGHTS, []byte{1, 2, 3, 4, 5})
	if got := parseRxStamp(append(other, cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts)...)); got != 1795712345123456789 {
		t.Fatalf("got %d", got)
	}
	for _, bad := range [][]byte{nil, other, other[:10], cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts[:8])} {
		if got := parseRxStamp(bad); got != 0 {
			t.Fatalf("parseRxStamp(%x) = %d, want 0", bad, got)
		}
	}
}

// TestStampedReader reads frames over real TCP with kernel timestamps:
// each read has one, it is not later than the client's own read time,
// and reading allocates nothing.
func TestStampedReader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	warmRxStamps(t)
	frame := serverFrame(true, opText, []byte(`{"type":"message","channel":"c","data":{"ts":1,"seq":1}}`))
	const frames = 3000
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			// Write once the client has turned timestamps on: packets
			// queued before that carry none.
			_, err = c.Read(make([]byte, 1))
			for i := 0; i < frames && err == nil; i++ {
				_, err = c.Write(frame)
			}
			c.Close()
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fr := newFrameReader(c, nil, 4096)
	if fr.rx = newStampedReader(c); fr.rx == nil {
		t.Fatal("SO_TIMESTAMPNS not available")
	}
	if _, err := c.Write([]byte{1}); err != nil { // go
		t.Fatal(err)
	}
	// The kernel turns receive timestamping on asynchronously, so the
	// first packets may come without one.
	read, stamped := 0, 0
	allocs := testing.AllocsPerRun(frames-10, func() {
		op, p, err := fr.next()
		if err != nil || op != opText || len(p) != len(frame)-2 {
			t.Fatalf("frame %d: %v", read, err)
		}
		if fr.rxNow != 0 {
			stamped++
			if fr.rxNow > fr.now || time.Duration(fr.now-fr.rxNow) > time.Minute {
				t.Fatalf("kernel time %d, read time %d", fr.rxNow, fr.now)
			}
		}
		read++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame, want 0", allocs)
	}
	if stamped < read/2 {
		t.Fatalf("%d of %d frames had a kernel timestamp", stamped, read)
	}
	for ; read < frames; read++ {
		if _, _, err := fr.next(); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := fr.next(); err == nil {
		t.Fatal("no EOF after the last frame")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// warmRxStamps waits until the kernel stamps received packets: the first
// socket to ask for timestamps turns them on for the whole system
// asynchronously, and until then every packet comes without one.
func warmRxStamps(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	rx := newStampedReader(c)
	if rx == nil {
		t.Fatal("SO_TIMESTAMPNS not available")
	}
	b := make([]byte, 16)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, err := peer.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, ts, err := rx.read(b); err != nil {
			t.Fatal(err)
		} else if ts != 0 {
			return
		}
	}
	t.Fatal("the kernel never stamped a received packet")
}
