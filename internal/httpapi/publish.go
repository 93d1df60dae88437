package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
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

// okBody is the answer to a successful publish.
var okBody = []byte("{\"ok\":true}\n")

// Header values of okBody; net/http only reads them, so they are shared.
var (
	jsonContentType = []string{"application/json"}
	okLength        = []string{strconv.Itoa(len(okBody))}
)

// writeOK answers a successful publish.
func writeOK(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = okLength
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}

// handlePublish serves POST /api/publish:
// {"channel":"c","data":...} or {"channels":["a","b"],"data":...}.
func handlePublish(cfg Config, h *hub.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodePublish(w, r, cfg.MaxPublishSize, cfg.BodyTimeout)
		if err != nil {
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
		opts := make([]wspush.ChannelOptions, len(channels))
		for i, ch := range channels {
			if opts[i], err = checkChannel(cfg, ch); err != nil {
				writeError(w, err)
				return
			}
		}
		data := wspush.CompactData(req.Data)
		var positions map[string]wspush.StreamPosition
		for i, ch := range channels {
			pos, err := h.Publish(r.Context(), &wspush.Message{Channel: ch, Data: data}, opts[i].PublishOptions())
			if err != nil && i > 0 {
				// Say which channels have the message, so that a retry
				// does not send it to them twice.
				writeError(w, wspush.Errorf(wspush.ErrUnavailable, "broker unavailable after the message went to "+strings.Join(channels[:i], ", ")+": retry the other channels"))
				return
			}
			if err != nil {
				writeError(w, unavailable(err))
				return
			}
			if pos.Offset > 0 {
				if positions == nil {
					positions = map[string]wspush.StreamPosition{}
				}
				positions[ch] = pos
			}
		}
		switch {
		case positions == nil:
			writeOK(w)
		case req.Channel != "":
			pos := positions[req.Channel]
			encode(w, http.StatusOK, publishResponse{OK: true, Offset: pos.Offset, Epoch: pos.Epoch})
		default:
			encode(w, http.StatusOK, publishResponse{OK: true, Channels: positions})
		}
	})
}

// publishResponse answers a publish to channels that keep history: the
// message's position, or the positions by channel for several channels.
type publishResponse struct {
	OK       bool                             `json:"ok"`
	Offset   uint64                           `json:"offset,omitempty"`
	Epoch    string                           `json:"epoch,omitempty"`
	Channels map[string]wspush.StreamPosition `json:"channels,omitempty"`
}

// handlePublishRaw serves POST /api/publish/{channel}: the body is the
// message, as a JSON string, or as JSON when Content-Type says so.
func handlePublishRaw(cfg Config, h *hub.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch := r.PathValue("channel")
		opts, err := checkChannel(cfg, ch)
		if err != nil {
			writeError(w, err)
			return
		}
		body, err := readBody(w, r, cfg.MaxPublishSize, cfg.BodyTimeout)
		if err != nil {
			writeError(w, err)
			return
		}
		var data json.RawMessage
		if isJSON(r) {
			if err := validJSON(body, wspush.MaxDataDepth); err != nil { // the body is the data
				writeError(w, err)
				return
			}
			data = wspush.CompactData(body)
		} else {
			if !utf8.Valid(body) {
				writeError(w, wspush.Errorf(wspush.ErrBadRequest, "body is not UTF-8 text; send JSON with Content-Type: application/json"))
				return
			}
			data, _ = json.Marshal(string(body))
		}
		pos, err := h.Publish(r.Context(), &wspush.Message{Channel: ch, Data: data}, opts.PublishOptions())
		if err != nil {
			writeError(w, unavailable(err))
			return
		}
		if pos.Offset == 0 {
			writeOK(w)
			return
		}
		encode(w, http.StatusOK, publishResponse{OK: true, Offset: pos.Offset, Epoch: pos.Epoch})
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
		err := decodeJSONBody(w, r, cfg.MaxPublishSize, cfg.BodyTimeout, func(key string, v []byte) (bool, error) {
			if key == "data" {
				req.Data = v
				return true, nil
			}
			return false, nil
		})
		if err != nil {
			writeError(w, err)
			return
		}
		if req.Data == nil {
			writeError(w, wspush.Errorf(wspush.ErrBadRequest, `missing "data"`))
			return
		}
		if _, err := h.Publish(r.Context(), &wspush.Message{Broadcast: true, Data: wspush.CompactData(req.Data)}, wspush.PublishOptions{}); err != nil {
			writeError(w, unavailable(err))
			return
		}
		writeOK(w)
	})
}

// checkChannel validates a channel name and returns its namespace's options.
func checkChannel(cfg Config, ch string) (wspush.ChannelOptions, error) {
	if !wspush.ValidChannel(ch, cfg.MaxChannelLength) {
		return wspush.ChannelOptions{}, wspush.Errorf(wspush.ErrBadRequest, "invalid channel name "+strconv.Quote(ch)+": use 1-"+strconv.Itoa(cfg.MaxChannelLength)+" bytes of A-Z a-z 0-9 _ - = @ , . ; : # $")
	}
	opts, ok := cfg.Namespaces.Lookup(ch)
	if !ok {
		return opts, wspush.Errorf(wspush.ErrNotFound, "unknown namespace "+strconv.Quote(wspush.Namespace(ch))+" of channel "+strconv.Quote(ch))
	}
	return opts, nil
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
	ct := r.Header.Get("Content-Type")
	if ct == "application/json" {
		return true // the usual case, without parsing
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// readBody reads the body, at most limit bytes (413 above), within timeout
// (400 after). A body that says its length, up to eagerBody bytes, is read
// into one allocation; a longer one grows as its bytes arrive, so that a
// head alone does not reserve the memory. When it fails, the answer closes
// the connection: net/http would otherwise wait for the rest of the body
// before answering, to keep the connection.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) ([]byte, error) {
	// net/http bounds the head's arrival, not the body's. Writers that
	// cannot set a deadline (the direct path's) bound the request already.
	d := readDeadliner(w)
	if d != nil {
		_ = d.SetReadDeadline(time.Now().Add(timeout))
	}
	body, err := readAll(w, r, limit)
	switch {
	case err != nil:
		w.Header().Set("Connection", "close")
	case d != nil:
		_ = d.SetReadDeadline(time.Time{}) // net/http's own from here
	}
	return body, err
}

// readAll reads the body for readBody.
func readAll(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, wspush.Errorf(wspush.ErrTooLarge, "body too large: at most "+strconv.FormatInt(limit, 10)+" bytes")
	}
	if r.ContentLength >= 0 && r.ContentLength <= eagerBody {
		// net/http's body reader holds the request to its Content-Length.
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, wspush.Errorf(wspush.ErrBadRequest, "reading body: "+err.Error())
		}
		return body, nil
	}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	body := buf.Bytes()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, wspush.Errorf(wspush.ErrTooLarge, "body too large: at most "+strconv.FormatInt(limit, 10)+" bytes")
	case err != nil:
		return nil, wspush.Errorf(wspush.ErrBadRequest, "reading body: "+err.Error())
	}
	return body, nil
}

// eagerBody is the largest body read into an allocation made before its
// bytes arrive.
const eagerBody = 16 << 10

// readDeadliner returns what sets the read deadline of w's connection, as
// http.ResponseController finds it (without allocating one), or nil.
func readDeadliner(w http.ResponseWriter) interface{ SetReadDeadline(time.Time) error } {
	for {
		switch v := w.(type) {
		case interface{ SetReadDeadline(time.Time) error }:
			return v
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
}

// decodeJSONBody reads a JSON object body, calling field for each of its
// members: Content-Type must be application/json (415), the body at most
// limit bytes (413), the JSON valid and every field known (400).
func decodeJSONBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration, field func(key string, value []byte) (bool, error)) error {
	if !isJSON(r) {
		return &statusError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json"}
	}
	body, err := readBody(w, r, limit, timeout)
	if err != nil {
		return err
	}
	return decodeObject(body, field)
}

// decodePublish reads the body of POST /api/publish. Data is a slice of the
// body, which is never reused.
func decodePublish(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) (publishRequest, error) {
	var req publishRequest
	err := decodeJSONBody(w, r, limit, timeout, func(key string, v []byte) (bool, error) {
		var err error
		switch key {
		case "channel":
			req.Channel, err = stringField(key, v)
		case "channels":
			if err = json.Unmarshal(v, &req.Channels); err != nil {
				err = wspush.Errorf(wspush.ErrBadRequest, `malformed JSON body: "channels" must be a list of strings`)
			}
		case "data":
			req.Data = v
		default:
			return false, nil
		}
		return true, err
	})
	return req, err
}

func dedupe(chans []string) []string {
	if len(chans) < 2 {
		return chans
	}
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
