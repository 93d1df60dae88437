package loadtest

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress shows how a run advances: on a terminal a status line redrawn
// in place several times a second, otherwise a line every Interval. A nil
// *Progress shows nothing.
type Progress struct {
	W        io.Writer
	Terminal bool
	// Interval between lines when W is not a terminal; 0 means 1 s.
	Interval time.Duration
}

// show calls status periodically and writes what it returns until the
// returned stop function is called; stop writes the final status and
// waits for the goroutine that does the writing.
func (p *Progress) show(status func() string) (stop func()) {
	if p == nil || p.W == nil {
		return func() {}
	}
	every := p.Interval
	if every <= 0 {
		every = time.Second
	}
	if p.Terminal {
		every = 100 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				p.write(status(), true)
				return
			case <-t.C:
				p.write(status(), false)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

func (p *Progress) write(s string, final bool) {
	switch {
	case p.Terminal && final:
		fmt.Fprintf(p.W, "\r\033[K%s\n", s)
	case p.Terminal:
		fmt.Fprintf(p.W, "\r\033[K%s", s)
	default:
		fmt.Fprintln(p.W, s)
	}
}

// bar draws done out of total as a bar width characters wide.
func bar(done, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	filled := min(done*width/total, width)
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}
