//go:build !linux

package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
)

// Supported reports whether this platform has a Server; without one, serve
// the listener with net/http alone.
const Supported = false

// Server is a stand-in where there is no netpoll: Run fails.
type Server struct{ ln net.Listener }

// NewServer returns a Server that cannot run.
func NewServer(_ *slog.Logger, ln net.Listener, _ Config) *Server { return &Server{ln: ln} }

// Listener returns the listener itself.
func (s *Server) Listener() net.Listener { return s.ln }

// Started is never closed.
func (s *Server) Started() <-chan struct{} { return nil }

// Stats is zero.
func (s *Server) Stats() Stats { return Stats{} }

// Run returns errors.ErrUnsupported.
func (s *Server) Run(context.Context) error { return errors.ErrUnsupported }

// Shutdown does nothing.
func (s *Server) Shutdown(context.Context) error { return nil }
