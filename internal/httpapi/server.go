// Package httpapi is wspush's HTTP face: the publish API for backends, the
// WebSocket endpoint, health and readiness, Prometheus metrics and the
// embedded web pages. NewServer takes every dependency explicitly.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/protocol/native"
	"github.com/wspush/wspush/internal/ws"
)

// DefaultMaxPublishSize bounds a publish request body: the same as the
// WebSocket read limit, so what the API accepts a client could send too.
const DefaultMaxPublishSize = 64 << 10

// DefaultBodyTimeout bounds a request body's arrival: the same as the
// server's bound on a request head's.
const DefaultBodyTimeout = 10 * time.Second

// Config holds the HTTP API's settings.
type Config struct {
	// APIKey, when set, is required as "Authorization: Bearer <key>" on
	// /api/. When empty, /api/ answers loopback callers only.
	APIKey string
	// MaxPublishSize bounds a publish body, in bytes (413 above).
	MaxPublishSize int64
	// BodyTimeout bounds the time a request's body takes to arrive, once
	// its head has (DefaultBodyTimeout when zero). The direct publish path
	// has its own deadline, for the whole request.
	BodyTimeout time.Duration
	// MaxChannelLength bounds channel names, in bytes.
	MaxChannelLength int
	// Namespaces resolves channels to their namespace.
	Namespaces wspush.Namespaces
	// Version is reported by /healthz and /api/info.
	Version string
	// BrokerName is reported by /api/info.
	BrokerName string
	// History serves /api/history; nil when the broker keeps none.
	History wspush.History
	// Presence serves /api/presence; nil when the broker cannot.
	Presence wspush.Presence
	// DirectRequests, when set, counts the publish requests served by
	// NewPublishHandler's path, for /metrics.
	DirectRequests func() uint64
}

// NewServer returns the HTTP handler of a wspush node.
func NewServer(logger *slog.Logger, cfg Config, h *hub.Hub, broker wspush.Broker, wsSrv *ws.Server, proto *native.Protocol) http.Handler {
	cfg.setDefaults()
	mux := http.NewServeMux()
	addRoutes(mux, logger, cfg, h, broker, wsSrv, proto)
	return mux
}

// NewPublishHandler returns the handler of the publish routes alone (the
// requests IsPublish accepts), for the path that serves them without
// net/http: the same handlers as NewServer's, without the router.
func NewPublishHandler(cfg Config, h *hub.Hub) http.Handler {
	cfg.setDefaults()
	api := requireAPIKey(cfg.APIKey)
	publish := api(handlePublish(cfg, h))
	publishRaw := api(handlePublishRaw(cfg, h))
	broadcast := api(handleBroadcast(cfg, h))
	other := notFound()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case !IsPublish(r.Method, p):
			other.ServeHTTP(w, r)
		case p == "/api/publish":
			publish.ServeHTTP(w, r)
		case p == "/api/broadcast":
			broadcast.ServeHTTP(w, r)
		default:
			r.SetPathValue("channel", p[len("/api/publish/"):])
			publishRaw.ServeHTTP(w, r)
		}
	})
}

func (cfg *Config) setDefaults() {
	if cfg.MaxPublishSize <= 0 {
		cfg.MaxPublishSize = DefaultMaxPublishSize
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.MaxChannelLength <= 0 || cfg.MaxChannelLength > wspush.MaxChannelLength {
		cfg.MaxChannelLength = wspush.MaxChannelLength
	}
}
