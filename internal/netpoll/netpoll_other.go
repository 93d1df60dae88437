//go:build !linux

package netpoll

import "errors"

// Supported reports whether this platform has a Poller.
const Supported = false

// Events a socket is armed for (unused without a Poller).
const (
	Readable = 1
	Writable = 4
	Hangup   = 0
)

// Poller is a stand-in: New fails, and callers use goroutines instead.
type Poller[T comparable] struct{}

// New returns errors.ErrUnsupported.
func New[T comparable]() (*Poller[T], error) { return nil, errors.ErrUnsupported }

// Add fails.
func (p *Poller[T]) Add(int, T, uint32) error { return errors.ErrUnsupported }

// Arm fails.
func (p *Poller[T]) Arm(int, uint32) error { return errors.ErrUnsupported }

// Remove does nothing.
func (p *Poller[T]) Remove(int, T) {}

// Run returns at once.
func (p *Poller[T]) Run(func(T, uint32)) error { return nil }

// Stop does nothing.
func (p *Poller[T]) Stop() {}

// Close does nothing.
func (p *Poller[T]) Close() {}

// Len is zero.
func (p *Poller[T]) Len() int { return 0 }
