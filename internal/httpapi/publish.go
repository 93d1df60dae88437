package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
)

// maxChannelsPerPublish bounds the channels of one publish request.
const maxChannelsPerPublish = 100

// publishRequest is the body of POST /api/publish.
type publishRequest struct {
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
}

// publishResponse is the body of a successful publish.
type publishResponse struct {
	OK bool `json:"ok"`
}

// handlePublish serves POST /api/publish:
// {"channel":"c","data":...} or {"channels":["a","b"],"data":...}.
func handlePublish(cfg Config, h *hub.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req publishRequest
		if err := decodeJSON(w, r, cfg.MaxPublishSize, &req); err != nil {
			writeError(w, err)
			return
		}
		channels := req.Channels
		switch {
		case req.Channel != "" && len(req.Channels) > 0:
			writeError(w, wspush.Errorf(wspush.ErrBadRequest, `give either "channel" or "channels", not both`))
			return
		case req.Channel != "":
			channels = []string{req.Channel}
		case len(channels) == 0:
			writeError(w, wspush.Errorf(wspush.ErrBadRequest, `missing "channel"`))
			return
		case len(channels) > maxChannelsPerPublish:
			writeError(w, wspush.Errorf(wspush.ErrBadRequest, "too many channels: at most "+strconv.Itoa(maxChannelsPerPublish)))
			return
		}
		if req.Data == nil {
			writeError(w, wspush.Errorf(wspush.ErrBadRequest, `missing "data"`))
			return
		}
		channels = dedupe(channels)
		for _, ch := range channels {
			if err := checkChannel(cfg, ch); err != nil {
				writeError(w, err)
				return
			}
		}
		data := compact(req.Data)
		for _, ch := range channels {
			if err := h.Publish(r.Context(), &wspush.Message{Channel: ch, Data: data}); err != nil {
				writeError(w, unavailable(err))
				return
			}
		}
		encode(w, http.StatusOK, publishResponse{OK: true})
	})
}

// handlePublishRaw serves POST /api/publish/{channel}: the body is the
// message, as a JSON string, or as JSON when Content-Type says so.
func handlePublishRaw(cfg Config, h *hub.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch := r.PathValue("channel")
		if err := checkChannel(cfg, ch); err != nil {
			writeError(w, err)
			return
		}
		body, err := readBody(w, r, cfg.MaxPublishSize)
		if err != nil {
			writeError(w, err)
			return
		}
		var data json.RawMessage
		if isJSON(r) {
			if !json.Valid(body) {
				writeError(w, wspush.Errorf(wspush.ErrBadRequest, "body is not valid JSON (Content-Type is application/json)"))
				return
			}
			data = compact(body)
		} else {
			if !utf8.Valid(body) {
				writeError(w, wspush.Errorf(wspush.ErrBadRequest, "body is not UTF-8 text; send JSON with Content-Type: application/json"))
				return
			}
			data, _ = json.Marshal(string(body))
		}
		if err := h.Publish(r.Context(), &wspush.Message{Channel: ch, Data: data}); err != nil {
			writeError(w, unavailable(err))
			return
		}
		encode(w, http.StatusOK, publishResponse{OK: true})
	})
}

// broadcastRequest is the body of POST /api/broadcast.
type broadcastRequest struct {
	Data json.RawMessage `json:"data"`
}

// handleBroadcast serves POST /api/broadcast: every connection of every
// node receives {"type":"broadcast","data":...}.
func handleBroadcast(cfg Config, h *hub.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req broadcastRequest
		if err := decodeJSON(w, r, cfg.MaxPublishSize, &req); err != nil {
			writeError(w, err)
			return
		}
		if req.Data == nil {
			writeError(w, wspush.Errorf(wspush.ErrBadRequest, `missing "data"`))
			return
		}
		if err := h.Publish(r.Context(), &wspush.Message{Broadcast: true, Data: compact(req.Data)}); err != nil {
			writeError(w, unavailable(err))
			return
		}
		encode(w, http.StatusOK, publishResponse{OK: true})
	})
}

// checkChannel validates a channel name and its namespace.
func checkChannel(cfg Config, ch string) error {
	if !wspush.ValidChannel(ch, cfg.MaxChannelLength) {
		return wspush.Errorf(wspush.ErrBadRequest, "invalid channel name "+strconv.Quote(ch)+": use 1-"+strconv.Itoa(cfg.MaxChannelLength)+" bytes of A-Z a-z 0-9 _ - = @ , . ; : # $")
	}
	if _, ok := cfg.Namespaces.Lookup(ch); !ok {
		return wspush.Errorf(wspush.ErrNotFound, "unknown namespace "+strconv.Quote(wspush.Namespace(ch))+" of channel "+strconv.Quote(ch))
	}
	return nil
}

// unavailable turns a broker failure into a 503 that tells the caller to
// retry; the broker's own words stay in the log.
func unavailable(err error) error {
	if errors.Is(err, wspush.ErrUnavailable) {
		return err
	}
	return wspush.Errorf(wspush.ErrUnavailable, "broker unavailable, retry")
}

// isJSON reports whether the request says its body is JSON.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// readBody reads the body, at most limit bytes (413 above).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, wspush.Errorf(wspush.ErrTooLarge, "body too large: at most "+strconv.FormatInt(limit, 10)+" bytes")
	case err != nil:
		return nil, wspush.Errorf(wspush.ErrBadRequest, "reading body: "+err.Error())
	}
	return body, nil
}

// decodeJSON reads a JSON body into v: Content-Type must be
// application/json (415), the body at most limit bytes (413), and every
// field known (400).
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if !isJSON(r) {
		return &statusError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json"}
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return wspush.Errorf(wspush.ErrBadRequest, "malformed JSON body: "+err.Error())
	}
	if dec.More() {
		return wspush.Errorf(wspush.ErrBadRequest, "malformed JSON body: more than one value")
	}
	return nil
}

// compact returns data without insignificant whitespace, so that a pushed
// frame holds one line. data is valid JSON.
func compact(data []byte) json.RawMessage {
	if !bytes.ContainsAny(data, " \t\r\n") {
		return data
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return data
	}
	return b.Bytes()
}

func dedupe(chans []string) []string {
	seen := make(map[string]bool, len(chans))
	out := chans[:0:0]
	for _, c := range chans {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}
