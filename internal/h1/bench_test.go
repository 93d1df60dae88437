//go:build linux

package h1

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// okHandler is a publish handler's shape without its work: it reads the
// body and answers a small JSON body.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	var buf [256]byte
	_, _ = io.ReadFull(r.Body, buf[:r.ContentLength])
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("{\"ok\":true}\n"))
})

// BenchmarkKeepAliveRequest is one request and its answer on a keep-alive
// loopback connection, served here or by net/http, with the same handler;
// the client is a raw socket that allocates nothing. Compare the two in
// one run: the difference is the per-request cost of each server.
func BenchmarkKeepAliveRequest(b *testing.B) {
	body := `{"channel":"bench","data":{"ts":1700000000000000000,"seq":1,"pad":"xxxxxxxxxxxxxxxxxx"}}`
	req := []byte("POST /fast/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	for _, bc := range []struct {
		name string
		fast func(string, string) bool
	}{{"h1", fast}, {"net-http", func(string, string) bool { return false }}} {
		b.Run(bc.name, func(b *testing.B) {
			benchRequests(b, req, okHandler, bc.fast)
		})
	}
}

// benchRequests sends req, again and again, on a keep-alive loopback
// connection to a Server with handler (the same for net/http) and fast,
// each time reading the answer whole; the client is a raw socket that
// allocates nothing.
func benchRequests(b *testing.B, req []byte, handler http.Handler, fast func(string, string) bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), ln, Config{Handler: handler, Fast: fast})
	hs := &http.Server{Handler: handler}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Run(ctx) })
	wg.Go(func() { _ = hs.Serve(srv.Listener()) })
	defer func() { _ = hs.Close(); cancel(); wg.Wait() }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		// The answer ends with its body, "\n" after the blank line.
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
			if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 && bytes.HasSuffix(buf[:n], []byte("}\n")) {
				break
			}
		}
	}
}

// BenchmarkLargeBody is a keep-alive publish with a 48 KiB body, which
// outgrows the connection's first buffer: it measures the buffer's growth.
func BenchmarkLargeBody(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 48<<10)
	req := append([]byte("POST /fast/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body...)
	benchRequests(b, req, discardHandler, fast)
}

var discardHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header()["Content-Type"] = []string{"application/json"}
	_, _ = w.Write([]byte("{\"ok\":true}\n"))
})
