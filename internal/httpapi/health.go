package httpapi

import (
	"net/http"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/protocol/native"
	"github.com/wspush/wspush/internal/web"
	"github.com/wspush/wspush/internal/ws"
)

// handleHealthz answers while the process serves HTTP at all.
func handleHealthz(version string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok", "version": version})
	})
}

// handleReadyz answers 200 while the node can take connections and
// publishes: the broker is connected and the node is not draining.
func handleReadyz(broker wspush.Broker, wsSrv *ws.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wsSrv.Draining() {
			encode(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		if err := broker.Ready(); err != nil {
			encode(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": wspush.ErrorMessage(err)})
			return
		}
		encode(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// handleWebSocket upgrades GET /ws to the native protocol. Query
// parameters are checked before the handshake, so that a bad one gets a
// plain HTTP error.
func handleWebSocket(wsSrv *ws.Server, proto *native.Protocol) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		channels, err := proto.Accept(r)
		if err != nil {
			writeError(w, err)
			return
		}
		err = wsSrv.Upgrade(w, r, func(c *ws.Conn) ws.Session { return proto.Open(c, channels) })
		if err != nil {
			writeError(w, err)
		}
	})
}

// handlePages serves the embedded web pages (GET and HEAD only).
func handlePages() http.Handler {
	files := http.FileServerFS(web.FS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed("GET, HEAD").ServeHTTP(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}
