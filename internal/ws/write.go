package ws

import (
	"errors"
	"net"
	"os"
	"time"
)

// writeBuffers writes frames through net.Buffers (writev where the
// connection supports it), for connections without a raw socket. The write
// timeout bounds a stretch without progress: a deadline that passes after
// some bytes went out is renewed.
func (c *Conn) writeBuffers(frames [][]byte) error {
	if c.srv.writeHook != nil {
		c.srv.writeHook(len(frames))
	}
	bufs := net.Buffers(frames)
	for {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		n, err := bufs.WriteTo(c.nc) // consumes what it writes from bufs
		if err == nil || n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
}

// consume drops the first n written bytes from frames. It reslices the
// frames, never touching their shared bytes.
func consume(frames [][]byte, n int) [][]byte {
	for len(frames) > 0 && n >= len(frames[0]) {
		n -= len(frames[0])
		frames = frames[1:]
	}
	if n > 0 {
		frames[0] = frames[0][n:]
	}
	return frames
}
