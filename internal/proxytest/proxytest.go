// Package proxytest runs TCP proxies on 127.0.0.1 for tests that need a
// connection to fail: a test cuts every connection through a proxy, keeps
// new ones out for as long as it likes, and lets them through again,
// possibly to another server; or it freezes the connections open at the
// time, which then carry nothing either way but stay open, as when the
// peer's host is gone without a word; or it holds new connections, as a
// dial that hangs, until it releases them.
package proxytest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards the connections it accepts to a target address.
type Proxy struct {
	ln net.Listener
	wg sync.WaitGroup // the accept loop and the copies

	mu      sync.Mutex
	target  string                    // "" while down
	conns   map[net.Conn]*atomic.Bool // each end's pair's frozen flag
	holding bool                      // new connections wait in held
	held    []net.Conn
}

// Start runs a proxy to target on 127.0.0.1:0 until the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]*atomic.Bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.Down()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.holding {
			p.held = append(p.held, c)
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		p.forward(c)
	}
}

// forward connects c to the target and copies both ways.
func (p *Proxy) forward(c net.Conn) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	if target == "" {
		c.Close()
		return
	}
	s, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.target == "" { // cut while dialing
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	frozen := &atomic.Bool{}
	p.conns[c], p.conns[s] = frozen, frozen
	p.mu.Unlock()
	p.wg.Go(func() { p.pipe(s, c, frozen) })
	p.wg.Go(func() { p.pipe(c, s, frozen) })
}

// pipe copies src to dst until either ends, then closes both. Once
// frozen, it drops what it reads.
func (p *Proxy) pipe(dst, src net.Conn, frozen *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Down cuts every connection and closes new ones at once, until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = ""
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	for _, c := range p.held {
		c.Close()
	}
	p.held = nil
}

// Freeze stops the connections open now from carrying anything, without
// closing them: what either end sends is read and dropped. New
// connections are not affected.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.conns {
		f.Store(true)
	}
}

// Hold keeps the connections accepted from now on waiting, connected to
// the proxy and to nothing else, until Release: a dial that hangs.
func (p *Proxy) Hold() {
	p.mu.Lock()
	p.holding = true
	p.mu.Unlock()
}

// Held is the number of connections waiting since Hold.
func (p *Proxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

// Release forwards the connections held, and the next ones.
func (p *Proxy) Release() {
	p.mu.Lock()
	held := p.held
	p.held, p.holding = nil, false
	p.mu.Unlock()
	for _, c := range held {
		p.forward(c)
	}
}

// Up lets connections through again, to target.
func (p *Proxy) Up(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}
