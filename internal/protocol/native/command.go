package native

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/wspush/wspush"
)

// Command is one client-to-server frame.
type Command struct {
	ID      *int64          `json:"id,omitempty"` // echoed in the reply
	Op      string          `json:"op"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Operations.
const (
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpPublish     = "publish"
	OpPing        = "ping"
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
