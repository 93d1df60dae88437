package h1

import (
	"bytes"
	"errors"
	"net/http"
	"net/textproto"
	"strings"
)

// Reasons parseHead gives no request.
var (
	// errIncomplete: the head has not arrived whole yet.
	errIncomplete = errors.New("h1: incomplete request head")
	// errNotServed: a request this package leaves to net/http, which
	// serves it or answers the error.
	errNotServed = errors.New("h1: request left to net/http")
)

// maxHead bounds a request head served here; a larger one goes to net/http.
const maxHead = 8 << 10

// request is a parsed request head, its strings all slices of one copy.
type request struct {
	method, target, path, query, host string
	header                            http.Header
	values                            []string // storage of header values, reused
	contentLength                     int64
	close                             bool // Connection: close
	headLen                           int  // bytes of the head, through its blank line
}

// requestLine parses "METHOD SP target SP HTTP/1.1" without its CRLF,
// checking the method and target. ok is false for anything else,
// including other HTTP versions.
func requestLine(line []byte) (method, target []byte, ok bool) {
	method, rest, ok1 := bytes.Cut(line, []byte{' '})
	target, proto, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" || len(method) == 0 || !isToken(method) {
		return nil, nil, false
	}
	if len(target) == 0 || target[0] != '/' {
		return nil, nil, false // only origin-form; net/http handles the rest
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return nil, nil, false
		}
	}
	return method, target, true
}

// splitTarget splits an origin-form target into its path and query; ok is
// false when the path is escaped, which this package leaves to net/http.
func splitTarget(target string) (path, query string, ok bool) {
	path, query, _ = cutString(target, '?')
	for i := range len(path) {
		if path[i] == '%' {
			return "", "", false
		}
	}
	return path, query, true
}

// parseHead parses the request head at the start of b into req, reusing
// req's header map and value storage: errIncomplete while b holds no whole
// head, errNotServed for a request that is not a plain HTTP/1.1 request
// with a Content-Length of at most maxBody, or that fast does not accept.
func parseHead(b []byte, maxBody int64, fast func(method, path string) bool, req *request) error {
	// Find the blank line that ends the head, a line at a time.
	lineEnd, end, n := -1, -1, 0 // end of the request line, of the head; header lines
	for pos := 0; end < 0; {
		i := bytes.IndexByte(b[pos:], '\n')
		if i < 0 {
			if len(b) >= maxHead {
				return errNotServed
			}
			return errIncomplete
		}
		if i == 0 || b[pos+i-1] != '\r' {
			return errNotServed // a bare LF
		}
		switch {
		case lineEnd < 0:
			lineEnd = pos + i - 1
		case i == 1:
			end = pos - 2 // the CRLF before the blank line
		default:
			n++
		}
		pos += i + 1
		if pos > maxHead {
			return errNotServed
		}
	}
	m, t, ok := requestLine(b[:lineEnd])
	if !ok {
		return errNotServed
	}
	// One copy of the head: the handler may keep its strings.
	head := string(b[:end+2])
	*req = request{header: req.header, values: req.values, headLen: end + 4, contentLength: -1}
	req.method, req.target = internMethod(m), head[len(m)+1:len(m)+1+len(t)]
	head = head[lineEnd+2:] // the header lines, each ending in CRLF
	if req.path, req.query, ok = splitTarget(req.target); !ok || !fast(req.method, req.path) {
		return errNotServed
	}
	if req.header == nil {
		req.header = make(http.Header, n)
	}
	clear(req.header)
	if cap(req.values) < n {
		req.values = make([]string, n)
	}
	values := req.values[:n] // storage for every single-valued header
	for head != "" {
		var line string
		line, head, _ = cutString(head, '\n')
		line = line[:len(line)-1] // the CR, checked above
		name, value, ok := cutString(line, ':')
		canonical, ok2 := tokenCase(name)
		if !ok || !ok2 {
			return errNotServed // obs-fold or a bad name
		}
		value = trimOWS(value)
		if !validValue(value) {
			return errNotServed
		}
		key := name
		if !canonical {
			key = textproto.CanonicalMIMEHeaderKey(name)
		}
		switch key {
		case "Host":
			if req.host != "" || !validHost(value) {
				return errNotServed
			}
			req.host = value
			continue // net/http keeps it in Request.Host only
		case "Content-Length":
			if req.contentLength >= 0 {
				return errNotServed
			}
			if req.contentLength = parseLength(value); req.contentLength < 0 || req.contentLength > maxBody {
				return errNotServed
			}
		case "Connection":
			switch {
			case asciiEqualFold(value, "close"):
				req.close = true
			case asciiEqualFold(value, "keep-alive"):
			default:
				return errNotServed // Upgrade and the like
			}
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer":
			return errNotServed
		}
		if vs := req.header[key]; vs != nil {
			req.header[key] = append(vs, value)
			continue
		}
		values[0] = value
		req.header[key] = values[:1:1]
		values = values[1:]
	}
	if req.host == "" || req.contentLength < 0 {
		return errNotServed
	}
	return nil
}

// internMethod returns the usual methods without an allocation.
func internMethod(m []byte) string {
	switch string(m) {
	case http.MethodPost:
		return http.MethodPost
	case http.MethodGet:
		return http.MethodGet
	}
	return string(m)
}

// parseLength parses a Content-Length value: decimal digits only, or -1.
func parseLength(v string) int64 {
	if v == "" || len(v) > 18 {
		return -1
	}
	var n int64
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return -1
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n
}

func cutString(s string, sep byte) (before, after string, found bool) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// tokenCase reports whether name is a token, and whether it is in the
// canonical case of header names (Content-Length), in one pass.
func tokenCase(name string) (canonical, ok bool) {
	canonical, upper := true, true
	for i := range len(name) {
		c := name[i]
		if c >= 0x80 || !tokenChars[c] {
			return false, false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	return canonical, name != ""
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isToken reports whether b is an RFC 9110 token.
func isToken[T string | []byte](b T) bool {
	for i := range len(b) {
		if c := b[i]; c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return len(b) > 0
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validValue reports whether v is a field value without control bytes
// other than tab.
func validValue(v string) bool {
	for i := range len(v) {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts the usual host[:port] forms and leaves the rest (and
// their errors) to net/http.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := range len(h) {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := range len(s) {
		if lower(s[i]) != lower(t[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
