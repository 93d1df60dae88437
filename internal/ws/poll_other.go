//go:build !linux

package ws

import "errors"

func (c *Conn) onReadable()                                 {}
func shutdownFD(int) error                                  { return errors.ErrUnsupported }
func (c *Conn) writev(f [][]byte, _ bool) ([][]byte, error) { return nil, c.writeBuffers(f) }
