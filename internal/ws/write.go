package ws

import (
	"net"
	"time"
)

// writeBuffers writes frames through net.Buffers (writev where the
// connection supports it), for connections without a raw socket.
func (c *Conn) writeBuffers(frames [][]byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	if c.srv.writeHook != nil {
		c.srv.writeHook(len(frames))
	}
	bufs := net.Buffers(frames)
	_, err := bufs.WriteTo(c.nc)
	return err
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
