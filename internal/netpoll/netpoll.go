// Package netpoll watches many sockets with one epoll instance, so that an
// idle connection costs no goroutine and no buffer: a socket is armed for
// one event at a time (one-shot), its owner handles the event and arms it
// again. It is used on Linux; elsewhere New returns errors.ErrUnsupported
// and callers use a goroutine per connection instead.
package netpoll
