package h1

import (
	"net/http"
	"time"
)

// Defaults for Config, the same as wspush's http.Server settings.
const (
	// DefaultMaxBodySize: larger bodies go to net/http.
	DefaultMaxBodySize = 64 << 10
	// DefaultReadHeaderTimeout bounds the wait for a whole request (and
	// for the first one after the connection is accepted).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout bounds the wait for the next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultWriteTimeout bounds the write of a response to a client that
	// does not read.
	DefaultWriteTimeout = 10 * time.Second
)

// Config holds a Server's settings. Zero durations and sizes take the
// defaults.
type Config struct {
	// Handler answers the requests served here, as it would in net/http.
	Handler http.Handler
	// Fast reports whether a request with this method and (unescaped)
	// path is served here; it must be cheap and must not block.
	Fast func(method, path string) bool
	// MaxBodySize is the largest request body served here.
	MaxBodySize int64
	// ReadHeaderTimeout, IdleTimeout and WriteTimeout are as in
	// http.Server; the request must arrive whole within ReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	WriteTimeout      time.Duration
}

func (c *Config) setDefaults() {
	setDefault(&c.MaxBodySize, DefaultMaxBodySize)
	setDefault(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
}

func setDefault[T int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Stats counts what a Server did.
type Stats struct {
	Served    uint64 // requests answered here
	HandedOff uint64 // connections handed to net/http
}
