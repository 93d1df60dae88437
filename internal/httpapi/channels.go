package httpapi

import (
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/ws"
)

// maxHistoryLimit bounds the messages one history request returns.
const maxHistoryLimit = 1000

// historyResponse is the body of GET /api/history/{channel}.
type historyResponse struct {
	Offset   uint64           `json:"offset"`
	Epoch    string           `json:"epoch"`
	Complete *bool            `json:"complete,omitempty"`
	Messages []historyMessage `json:"messages"`
}

type historyMessage struct {
	Offset uint64 `json:"offset"`
	Data   []byte `json:"data"`
}

// MarshalJSON keeps data as the raw JSON it is.
func (m historyMessage) MarshalJSON() ([]byte, error) {
	b := append([]byte(`{"offset":`), strconv.FormatUint(m.Offset, 10)...)
	b = append(b, `,"data":`...)
	b = append(b, m.Data...)
	return append(b, '}'), nil
}

// handleHistory serves GET /api/history/{channel}?limit=N&since=OFFSET&epoch=E:
// the newest limit messages, or those after since (in epoch, the channel's
// current one when omitted), oldest first.
func handleHistory(cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch := r.PathValue("channel")
		opts, err := checkChannel(cfg, ch)
		if err != nil {
			writeError(w, err)
			return
		}
		if opts.HistorySize <= 0 || cfg.History == nil {
			writeError(w, wspush.Errorf(wspush.ErrNotFound, "no history: history_size is 0 for the namespace of "+strconv.Quote(ch)))
			return
		}
		q := wspush.HistoryQuery{Limit: min(opts.HistorySize, maxHistoryLimit)}
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeError(w, wspush.Errorf(wspush.ErrBadRequest, "limit must be a non-negative integer"))
				return
			}
			if n > 0 {
				q.Limit = min(n, q.Limit)
			}
		}
		if v := r.URL.Query().Get("since"); v != "" {
			off, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				writeError(w, wspush.Errorf(wspush.ErrBadRequest, "since must be a non-negative integer offset"))
				return
			}
			epoch, given := r.URL.Query()["epoch"]
			since := wspush.StreamPosition{Offset: off}
			if given {
				since.Epoch = epoch[0]
			} else {
				cur, err := cfg.History.History(r.Context(), ch, wspush.HistoryQuery{Limit: 1})
				if err != nil {
					writeError(w, unavailable(err))
					return
				}
				since.Epoch = cur.Position.Epoch
			}
			q.Since = &since
		}
		res, err := cfg.History.History(r.Context(), ch, q)
		if err != nil {
			writeError(w, unavailable(err))
			return
		}
		out := historyResponse{Offset: res.Position.Offset, Epoch: res.Position.Epoch, Messages: make([]historyMessage, len(res.Messages))}
		if q.Since != nil {
			out.Complete = &res.Complete
		}
		for i, m := range res.Messages {
			out.Messages[i] = historyMessage{m.Offset, m.Data}
		}
		encode(w, http.StatusOK, out)
	})
}

// presenceResponse is the body of GET /api/presence/{channel}.
type presenceResponse struct {
	Clients []wspush.ClientInfo `json:"clients"`
}

// handlePresence serves GET /api/presence/{channel} and, with stats,
// GET /api/presence_stats/{channel}.
func handlePresence(cfg Config, stats bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch := r.PathValue("channel")
		opts, err := checkChannel(cfg, ch)
		if err != nil {
			writeError(w, err)
			return
		}
		if !opts.Presence || cfg.Presence == nil {
			writeError(w, wspush.Errorf(wspush.ErrNotFound, "no presence: presence is off for the namespace of "+strconv.Quote(ch)))
			return
		}
		if stats {
			st, err := cfg.Presence.PresenceStats(r.Context(), ch)
			if err != nil {
				writeError(w, unavailable(err))
				return
			}
			encode(w, http.StatusOK, st)
			return
		}
		clients, err := cfg.Presence.Presence(r.Context(), ch)
		if err != nil {
			writeError(w, unavailable(err))
			return
		}
		out := presenceResponse{Clients: make([]wspush.ClientInfo, 0, len(clients))}
		for _, c := range clients {
			out.Clients = append(out.Clients, c)
		}
		slices.SortFunc(out.Clients, func(a, b wspush.ClientInfo) int { return strings.Compare(a.ClientID, b.ClientID) })
		encode(w, http.StatusOK, out)
	})
}

// channelsResponse is the body of GET /api/channels.
type channelsResponse struct {
	Channels []hub.ChannelInfo `json:"channels"`
}

// handleChannels serves GET /api/channels?prefix=P: this node's channels
// with subscribers, and how many.
func handleChannels(h *hub.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chans := h.Channels(r.URL.Query().Get("prefix"))
		if chans == nil {
			chans = []hub.ChannelInfo{}
		}
		encode(w, http.StatusOK, channelsResponse{chans})
	})
}

// infoResponse is the body of GET /api/info.
type infoResponse struct {
	Version        string  `json:"version"`
	Broker         string  `json:"broker"`
	UptimeSeconds  float64 `json:"uptime_seconds"`
	Connections    int64   `json:"connections"`
	Subscriptions  int64   `json:"subscriptions"`
	Channels       int64   `json:"channels"`
	Published      uint64  `json:"messages_published"`
	Delivered      uint64  `json:"messages_delivered"`
	QueueOverflows uint64  `json:"queue_overflows"`
	Goroutines     int     `json:"goroutines"`
}

// handleInfo serves GET /api/info: this node's figures.
func handleInfo(cfg Config, h *hub.Hub, wsSrv *ws.Server) http.Handler {
	started := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs, ws := h.Stats(), wsSrv.Stats()
		encode(w, http.StatusOK, infoResponse{
			Version:        cfg.Version,
			Broker:         cfg.BrokerName,
			UptimeSeconds:  time.Since(started).Round(time.Millisecond).Seconds(),
			Connections:    ws.Connections,
			Subscriptions:  hs.Subscriptions,
			Channels:       hs.Channels,
			Published:      hs.Published,
			Delivered:      hs.Delivered,
			QueueOverflows: ws.Overflows,
			Goroutines:     runtime.NumGoroutine(),
		})
	})
}
