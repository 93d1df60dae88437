package loadtest

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
)

// tally counts errors by a short reason without addresses or ports, so
// that 10,000 refused connections make one line.
type tally struct {
	mu sync.Mutex
	m  map[string]int
}

func (t *tally) add(err error) {
	r := reason(err)
	t.mu.Lock()
	if t.m == nil {
		t.m = map[string]int{}
	}
	t.m[r]++
	t.mu.Unlock()
}

// counts returns a copy of the counts (nil when there are none).
func (t *tally) counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) == 0 {
		return nil
	}
	out := make(map[string]int, len(t.m))
	for k, v := range t.m {
		out[k] = v
	}
	return out
}

// total returns the number of errors counted.
func (t *tally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.m {
		n += v
	}
	return n
}

// reason is err as a short, address-free phrase: "connect: connection
// refused", "handshake: HTTP 503", "subscribe: timeout".
func reason(err error) string {
	msg := err.Error()
	phase, _, found := strings.Cut(msg, ": ")
	if !found || strings.ContainsAny(phase, " ") {
		phase = ""
	} else {
		phase += ": "
	}
	var errno syscall.Errno
	var ce *CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return phase + ce.Error()
	case errors.As(err, &errno):
		r := phase + errno.Error()
		if errno == syscall.EMFILE || errno == syscall.ENFILE {
			r += " (the client's open-file limit)"
		}
		if errno == syscall.EADDRNOTAVAIL {
			r += " (out of ephemeral ports: raise --src-ips)"
		}
		return r
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return phase + "timeout"
	case errors.Is(err, context.Canceled):
		return phase + "interrupted"
	}
	if len(msg) > 160 {
		msg = msg[:160] + "..."
	}
	return msg
}
