package h1

import (
	"net/http"
	"strconv"
)

// response is the http.ResponseWriter of a request served here: the
// handler's header and body are kept until it returns, then written out
// whole behind the status line.
type response struct {
	header http.Header
	status int
	body   []byte
}

// reset readies w for the next request, keeping its storage.
func (w *response) reset() {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	clear(w.header)
	w.status = 0
	w.body = w.body[:0]
}

// Header returns the response header, to be set before WriteHeader.
func (w *response) Header() http.Header { return w.header }

// WriteHeader sets the status; the first call wins, as in net/http.
// Informational statuses are not sent.
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

// Write appends to the body.
func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// appendTo appends the whole response to dst. date is the Date header's
// value; closing adds Connection: close.
func (w *response) appendTo(dst []byte, date string, closing bool) []byte {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	bodyAllowed := w.status != http.StatusNoContent && w.status != http.StatusNotModified
	if !bodyAllowed {
		w.body = w.body[:0]
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(w.status), 10)
	dst = append(dst, ' ')
	if text := http.StatusText(w.status); text != "" {
		dst = append(dst, text...)
	} else {
		dst = append(dst, "status code "...)
		dst = strconv.AppendInt(dst, int64(w.status), 10)
	}
	dst = append(dst, "\r\n"...)
	for k, vs := range w.header {
		if k == "Connection" || k == "Transfer-Encoding" || k == "Content-Length" && bodyAllowed {
			continue // ours to set
		}
		for _, v := range vs {
			dst = appendField(dst, k, v)
		}
	}
	if bodyAllowed {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(w.body)), 10)
		dst = append(dst, "\r\n"...)
		if _, ok := w.header["Content-Type"]; !ok && len(w.body) > 0 {
			dst = appendField(dst, "Content-Type", http.DetectContentType(w.body))
		}
	}
	if _, ok := w.header["Date"]; !ok {
		dst = appendField(dst, "Date", date)
	}
	if closing {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, w.body...)
}

// appendField appends "k: v" and CRLF, with any CR or LF of v made a
// space, as net/http does.
func appendField(dst []byte, k, v string) []byte {
	dst = append(dst, k...)
	dst = append(dst, ": "...)
	for i := range len(v) {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, "\r\n"...)
}
