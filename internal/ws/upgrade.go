package ws

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/wspush/wspush"
)

// acceptGUID is the key suffix of RFC 6455 section 1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// checkHandshake validates the client's opening handshake and returns the
// Sec-WebSocket-Accept value to answer with.
func checkHandshake(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Method != http.MethodGet {
		return "", wspush.Errorf(wspush.ErrBadRequest, "websocket handshake must be a GET")
	}
	if !r.ProtoAtLeast(1, 1) {
		// RFC 6455 section 4.1: the request is HTTP/1.1 or later.
		return "", wspush.Errorf(wspush.ErrBadRequest, "websocket handshake needs HTTP/1.1, not "+r.Proto)
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return "", wspush.Errorf(wspush.ErrBadRequest, "not a websocket handshake: expected Connection: Upgrade and Upgrade: websocket")
	}
	if r.Header.Get("Sec-Websocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return "", wspush.Errorf(wspush.ErrBadRequest, "unsupported websocket version: this server speaks version 13")
	}
	keys := r.Header.Values("Sec-Websocket-Key")
	if len(keys) != 1 {
		// Two keys leave the answer ambiguous (RFC 6455 section 4.2.1).
		return "", wspush.Errorf(wspush.ErrBadRequest, "bad Sec-WebSocket-Key: want exactly one")
	}
	key := keys[0]
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		return "", wspush.Errorf(wspush.ErrBadRequest, "bad Sec-WebSocket-Key")
	}
	sum := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// headerHasToken reports whether a comma-separated header holds token,
// compared without regard to case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Origins decides which browser origins may open a WebSocket. Requests
// without an Origin header come from non-browser clients and are accepted;
// a browser is accepted from the server's own origin and from the listed
// ones. The zero value accepts same-origin browsers only.
type Origins struct {
	any   bool
	exact map[string]bool
	// suffixes holds "scheme://.example.com" for patterns "scheme://*.example.com".
	suffixes []string
}

// NewOrigins parses allowed origins: "*" (any origin), exact origins such as
// "https://example.com" or "http://localhost:8080", and one-level wildcards
// such as "https://*.example.com" (any subdomain, not the bare domain).
func NewOrigins(allowed []string) (Origins, error) {
	o := Origins{exact: map[string]bool{}}
	for _, a := range allowed {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case a == "*":
			o.any = true
		default:
			u, err := url.Parse(a)
			if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return Origins{}, wspush.Errorf(wspush.ErrBadRequest, "bad allowed origin "+quote(a)+": want scheme://host[:port], * or scheme://*.domain")
			}
			host := strings.ToLower(u.Host)
			if rest, ok := strings.CutPrefix(host, "*."); ok {
				o.suffixes = append(o.suffixes, strings.ToLower(u.Scheme)+"://."+rest)
				continue
			}
			o.exact[strings.ToLower(u.Scheme)+"://"+host] = true
		}
	}
	return o, nil
}

// Allowed reports whether the request's origin may connect.
func (o Origins) Allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || o.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Host)
	if strings.EqualFold(host, r.Host) {
		return true // same origin
	}
	scheme := strings.ToLower(u.Scheme)
	if o.exact[scheme+"://"+host] {
		return true
	}
	for _, s := range o.suffixes {
		if strings.HasPrefix(s, scheme+"://") && strings.HasSuffix(host, s[len(scheme)+3:]) {
			return true
		}
	}
	return false
}

func quote(s string) string { return `"` + s + `"` }
