//go:build !linux

package ws

import "errors"

const pollerSupported = false

// poller is a stand-in: without epoll every connection has a reader goroutine.
type poller struct{}

func newPoller() (*poller, error)                           { return nil, errors.ErrUnsupported }
func (p *poller) add(*Conn) error                           { return errors.ErrUnsupported }
func (p *poller) remove(*Conn)                              {}
func (p *poller) run(func(*Conn)) error                     { return nil }
func (p *poller) stop()                                     {}
func (p *poller) close()                                    {}
func (c *Conn) onReadable()                                 {}
func shutdownFD(int) error                                  { return errors.ErrUnsupported }
func (c *Conn) writev(f [][]byte, _ bool) ([][]byte, error) { return nil, c.writeBuffers(f) }
