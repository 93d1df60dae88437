package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func anyPost(method, _ string) bool { return method == http.MethodPost }

func TestParseHead(t *testing.T) {
	raw := "POST /api/publish?x=1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\ncontent-type: application/json\r\nX-A: 1\r\nX-A: 2\r\nConnection: close\r\n\r\nabc"
	var req request
	if err := parseHead([]byte(raw), 10, anyPost, &req); err != nil {
		t.Fatal(err)
	}
	if req.method != "POST" || req.path != "/api/publish" || req.query != "x=1" || req.host != "h:1" ||
		req.contentLength != 3 || !req.close || req.headLen != len(raw)-3 {
		t.Fatalf("%+v", req)
	}
	if got := req.header["Content-Type"]; len(got) != 1 || got[0] != "application/json" {
		t.Fatalf("Content-Type %q", got)
	}
	if got := req.header["X-A"]; len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Fatalf("X-A %q", got)
	}
	for i := range len(raw) - 3 {
		if err := parseHead([]byte(raw[:i]), 10, anyPost, &req); err != errIncomplete {
			t.Fatalf("prefix of %d bytes: %v, want errIncomplete", i, err)
		}
	}
}

func TestParseHeadLeavesToNetHTTP(t *testing.T) {
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", // fast says no
		"POST / HTTP/1.0\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n folded\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\nX: y\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\nContent-Length: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h h\r\nContent-Length: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nHost: h\r\nContent-Length: 1\r\n\r\n",
		"POST /%2F HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nContent-Length: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n" + strings.Repeat("X: y\r\n", 2000) + "\r\n",
	} {
		var req request
		if err := parseHead([]byte(raw), 10, anyPost, &req); err != errNotServed {
			t.Errorf("%.80q: %v, want errNotServed", raw, err)
		}
	}
}

// FuzzParseHead checks parseHead against net/http: whatever it serves,
// net/http reads the same way.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("POST /api/publish HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nAuthorization: Bearer k\r\n\r\n{}"))
	f.Add([]byte("POST /a?b=c HTTP/1.1\r\nHost: [::1]:80\r\ncontent-length: 0\r\nX:  v \r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req request
		if err := parseHead(b, 1<<20, anyPost, &req); err != nil {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("served here, but net/http says %v", err)
		}
		if want.Method != req.method || want.URL.Path != req.path || want.URL.RawQuery != req.query ||
			want.Host != req.host || want.ContentLength != req.contentLength || want.Close != req.close ||
			want.RequestURI != req.target {
			t.Fatalf("net/http %s %q %q %q %d close %v, here %+v", want.Method, want.URL.Path, want.URL.RawQuery, want.Host, want.ContentLength, want.Close, req)
		}
		want.Header.Del("Host")
		for k, vs := range want.Header {
			if got := req.header[k]; strings.Join(got, "\x00") != strings.Join(vs, "\x00") {
				t.Fatalf("header %s: net/http %q, here %q", k, vs, got)
			}
		}
		for k := range req.header {
			if _, ok := want.Header[k]; !ok {
				t.Fatalf("header %s here only", k)
			}
		}
	})
}
