package httpapi

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/protocol/native"
	"github.com/wspush/wspush/internal/ws"
)

// addRoutes is the whole URL space of a wspush node.
func addRoutes(mux *http.ServeMux, logger *slog.Logger, cfg Config, h *hub.Hub, broker wspush.Broker, wsSrv *ws.Server, proto *native.Protocol) {
	api := requireAPIKey(cfg.APIKey)

	mux.Handle("GET /ws", handleWebSocket(wsSrv, proto))

	mux.Handle("POST /api/publish", api(handlePublish(cfg, h)))
	mux.Handle("POST /api/publish/{channel}", api(handlePublishRaw(cfg, h)))
	mux.Handle("POST /api/broadcast", api(handleBroadcast(cfg, h)))
	mux.Handle("GET /api/history/{channel}", api(handleHistory(cfg)))
	mux.Handle("GET /api/presence/{channel}", api(handlePresence(cfg, false)))
	mux.Handle("GET /api/presence_stats/{channel}", api(handlePresence(cfg, true)))
	mux.Handle("GET /api/channels", api(handleChannels(h)))
	mux.Handle("GET /api/info", api(handleInfo(cfg, h, wsSrv)))
	mux.Handle("/api/history/{channel}", methodNotAllowed("GET"))
	mux.Handle("/api/presence/{channel}", methodNotAllowed("GET"))
	mux.Handle("/api/presence_stats/{channel}", methodNotAllowed("GET"))
	mux.Handle("/api/channels", methodNotAllowed("GET"))
	mux.Handle("/api/info", methodNotAllowed("GET"))
	mux.Handle("/api/publish", methodNotAllowed("POST"))
	mux.Handle("/api/publish/{channel}", methodNotAllowed("POST"))
	mux.Handle("/api/broadcast", methodNotAllowed("POST"))
	mux.Handle("/api/", notFound())

	mux.Handle("GET /healthz", handleHealthz(cfg.Version))
	mux.Handle("GET /readyz", handleReadyz(broker, wsSrv))
	mux.Handle("GET /metrics", handleMetrics(logger, cfg, h, wsSrv))

	mux.Handle("/", handlePages())
}

// IsPublish reports whether a request is one of the publish routes
// (POST /api/publish, /api/publish/{channel}, /api/broadcast), which
// wspush serves on a direct path (package h1) rather than net/http.
func IsPublish(method, path string) bool {
	if method != http.MethodPost {
		return false
	}
	switch path {
	case "/api/publish", "/api/broadcast":
		return true
	}
	ch, ok := strings.CutPrefix(path, "/api/publish/")
	return ok && ch != "" && ch != "." && ch != ".." && !strings.Contains(ch, "/")
}
