package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/ws"
)

// handleMetrics serves the node's metrics in the Prometheus format. The
// counters live in the hub and the transport; the collector reads them at
// scrape time, so the hot path pays nothing for metrics.
func handleMetrics(logger *slog.Logger, cfg Config, h *hub.Hub, wsSrv *ws.Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{hub: h, ws: wsSrv, direct: cfg.DirectRequests},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)})
}

var (
	descConnections   = prometheus.NewDesc("wspush_connections", "WebSocket connections open now.", nil, nil)
	descAccepted      = prometheus.NewDesc("wspush_connections_accepted_total", "WebSocket connections accepted since start.", nil, nil)
	descClosed        = prometheus.NewDesc("wspush_connections_closed_total", "WebSocket connections closed, by close code (1006: without a close frame).", []string{"code"}, nil)
	descOverflows     = prometheus.NewDesc("wspush_queue_overflows_total", "Connections closed as slow consumers (4001): their send queue overflowed.", nil, nil)
	descSubscriptions = prometheus.NewDesc("wspush_subscriptions", "Channel subscriptions of local connections.", nil, nil)
	descChannels      = prometheus.NewDesc("wspush_channels", "Channels with local subscribers.", nil, nil)
	descPublished     = prometheus.NewDesc("wspush_messages_published_total", "Messages published through this node (API and clients).", nil, nil)
	descDelivered     = prometheus.NewDesc("wspush_messages_delivered_total", "Messages queued to local connections.", nil, nil)
	descDirect        = prometheus.NewDesc("wspush_api_requests_direct_total", "Publish API requests answered by the direct path (package h1) rather than net/http.", nil, nil)
)

// collector exposes the hub's and the transport's counters.
type collector struct {
	hub    *hub.Hub
	ws     *ws.Server
	direct func() uint64 // nil: no direct path
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descAccepted, descClosed, descOverflows, descSubscriptions, descChannels, descPublished, descDelivered, descDirect} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	hs, ws := c.hub.Stats(), c.ws.Stats()
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(ws.Connections))
	ch <- prometheus.MustNewConstMetric(descAccepted, prometheus.CounterValue, float64(ws.Accepted))
	for code, n := range ws.Closes {
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(n), strconv.Itoa(code))
	}
	ch <- prometheus.MustNewConstMetric(descOverflows, prometheus.CounterValue, float64(ws.Overflows))
	ch <- prometheus.MustNewConstMetric(descSubscriptions, prometheus.GaugeValue, float64(hs.Subscriptions))
	ch <- prometheus.MustNewConstMetric(descChannels, prometheus.GaugeValue, float64(hs.Channels))
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(hs.Published))
	ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(hs.Delivered))
	if c.direct != nil {
		ch <- prometheus.MustNewConstMetric(descDirect, prometheus.CounterValue, float64(c.direct()))
	}
}
