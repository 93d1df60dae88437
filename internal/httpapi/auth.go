package httpapi

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"github.com/wspush/wspush"
)

// requireAPIKey guards the server API. With a key, a request must carry
// "Authorization: Bearer <key>" (401 otherwise). Without one, only loopback
// callers are answered (403 otherwise).
func requireAPIKey(key string) func(http.Handler) http.Handler {
	want := []byte(key)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if key == "" {
				if !isLoopback(r.RemoteAddr) {
					writeError(w, wspush.Errorf(wspush.ErrForbidden, "no API key is configured: the API answers loopback callers only; set --api-key"))
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			got, ok := bearerToken(r.Header.Get("Authorization"))
			if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wspush"`)
				if !ok {
					writeError(w, wspush.Errorf(wspush.ErrUnauthorized, "missing API key: send Authorization: Bearer <key>"))
				} else {
					writeError(w, wspush.Errorf(wspush.ErrUnauthorized, "wrong API key"))
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// bearerToken returns the credentials of an Authorization value of the
// Bearer scheme, whose name is case-insensitive (RFC 9110, section 11.1).
func bearerToken(auth string) (string, bool) {
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// methodNotAllowed answers 405 for a route's other methods.
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, &statusError{http.StatusMethodNotAllowed, "method_not_allowed", "method " + r.Method + " not allowed: use " + allow})
	})
}

// notFound answers 404 for unknown API routes.
func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, wspush.Errorf(wspush.ErrNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path))
	})
}
