package native

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/wspush/wspush"
)

// Command is one client-to-server frame.
type Command struct {
	ID      *int64          `json:"id,omitempty"` // echoed in the reply
	Op      string          `json:"op"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	// Since asks subscribe to recover the messages after this position,
	// and history for the messages after it.
	Since *wspush.StreamPosition `json:"since,omitempty"`
	// Limit bounds the messages history returns.
	Limit *int `json:"limit,omitempty"`
}

// Operations.
const (
	OpSubscribe     = "subscribe"
	OpUnsubscribe   = "unsubscribe"
	OpPublish       = "publish"
	OpPing          = "ping"
	OpHistory       = "history"
	OpPresence      = "presence"
	OpPresenceStats = "presence_stats"
)

// DecodeCommand parses one frame. On error it still returns the command's
// id when it could be read, so that the error reply can carry it.
func DecodeCommand(frame []byte) (Command, error) {
	var cmd Command
	frame = bytes.TrimSpace(frame)
	if len(frame) == 0 || frame[0] != '{' {
		return cmd, wspush.Errorf(wspush.ErrBadRequest, "malformed command: want a JSON object")
	}
	if err := json.Unmarshal(frame, &cmd); err != nil {
		var idOnly struct {
			ID *int64 `json:"id"`
		}
		cmd = Command{}
		if json.Unmarshal(frame, &idOnly) == nil {
			cmd.ID = idOnly.ID
		} else {
			cmd.ID = leadingID(frame) // not JSON: read the id as far as the frame parses
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return cmd, wspush.Errorf(wspush.ErrBadRequest, "malformed command: field "+typeErr.Field+" has the wrong type")
		}
		return cmd, wspush.Errorf(wspush.ErrBadRequest, "malformed command: invalid JSON")
	}
	if cmd.Op == "" {
		return cmd, wspush.Errorf(wspush.ErrBadRequest, "malformed command: missing op")
	}
	return cmd, nil
}

// leadingID returns the top-level "id" of a frame that is not valid JSON,
// when the frame parses up to and including it: {"id":7,"op":} gives 7.
// It returns nil when the id is missing, is no int64, or comes after the
// point where the frame breaks.
func leadingID(frame []byte) *int64 {
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return nil
		}
		if !strings.EqualFold(key, "id") { // json.Unmarshal matches keys case-insensitively too
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return nil
			}
			continue
		}
		t, err = dec.Token()
		n, ok := t.(json.Number)
		if err != nil || !ok {
			return nil
		}
		id, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return nil
		}
		return &id
	}
}
