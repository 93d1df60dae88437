package wspush

import (
	"bytes"
	"encoding/json"
)

// Message is one publication: a JSON value for the subscribers of a channel,
// or for every connection when Broadcast is set; or the news that a client
// joined or left a channel.
type Message struct {
	// Kind says what the message is; the zero value is a publication.
	Kind Kind
	// Channel the message is published to; empty when Broadcast is set.
	Channel string
	// Data is the published JSON value, already validated. Its bytes are
	// shared by every subscriber and must not be modified after publishing.
	Data json.RawMessage
	// Broadcast delivers the message to every connection on every node,
	// whatever it is subscribed to.
	Broadcast bool
	// Offset and Epoch place a publication in its channel's history; the
	// broker sets them, and only for channels that keep history (Offset 0
	// otherwise). Offsets count 1, 2, 3... within an epoch.
	Offset uint64
	Epoch  string
	// Client is who joined or left, for KindJoin and KindLeave.
	Client *ClientInfo
}

// Kind is the kind of a Message.
type Kind uint8

// Kinds of messages.
const (
	KindPublication Kind = iota // data published to a channel
	KindJoin                    // a client subscribed to the channel
	KindLeave                   // a client left the channel
)

// Position returns where m stands in its channel's history.
func (m *Message) Position() StreamPosition { return StreamPosition{Offset: m.Offset, Epoch: m.Epoch} }

// StreamPosition is a place in a channel's history: an offset within an
// epoch. The epoch changes when the history is lost (a restart of the memory
// broker, expiry of an idle channel), so that a client holding an old
// position knows its offsets mean nothing any more.
type StreamPosition struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// ClientInfo describes a subscriber, in presence and in join/leave messages.
type ClientInfo struct {
	ClientID string          `json:"client_id"`
	UserID   string          `json:"user_id,omitempty"`
	Info     json.RawMessage `json:"info,omitempty"`
}

// MaxChannelLength is the longest channel name the protocol allows, in bytes.
const MaxChannelLength = 255

// MaxDataDepth bounds how deep a message's data nests arrays and objects.
// Pushes and history replies wrap the data a few levels deeper, and
// decoders have limits (Go's encoding/json: 10,000): data deeper than
// this is refused where it comes in.
const MaxDataDepth = 256

// DataDepthWithin reports whether the JSON value b, which must be valid
// JSON, nests arrays and objects at most limit deep.
func DataDepthWithin(b []byte, limit int) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++ // the escaped character
				}
			}
		case '[', '{':
			if depth++; depth > limit {
				return false
			}
		case ']', '}':
			depth--
		}
	}
	return true
}

// ValidChannel reports whether name is a valid channel name of at most
// maxLen bytes: 1 or more bytes of [A-Za-z0-9_\-=@,.;:#$]. A maxLen of zero or
// above MaxChannelLength means MaxChannelLength.
func ValidChannel(name string, maxLen int) bool {
	if maxLen <= 0 || maxLen > MaxChannelLength {
		maxLen = MaxChannelLength
	}
	if len(name) == 0 || len(name) > maxLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !channelByte[name[i]] {
			return false
		}
	}
	return true
}

// channelByte marks the bytes allowed in a channel name.
var channelByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-=@,.;:#$" {
		t[c] = true
	}
	return t
}()

// Namespace returns the namespace of a channel: the part of its name before
// the first ':', or "" (the default namespace) when it has none.
func Namespace(channel string) string {
	for i := 0; i < len(channel); i++ {
		if channel[i] == ':' {
			return channel[:i]
		}
	}
	return ""
}

// CompactData returns data, valid JSON, without insignificant whitespace, so
// that a push holds one line however its data was published (the API and
// clients alike). Data with no whitespace outside its strings is returned
// as is, without a copy.
func CompactData(data json.RawMessage) json.RawMessage {
	// ContainsAny first: most data has no whitespace at all, and it
	// finds that out faster than the scan that knows strings.
	if !bytes.ContainsAny(data, " \t\r\n") || !spaceOutsideStrings(data) {
		return data
	}
	var b bytes.Buffer
	b.Grow(len(data))
	if err := json.Compact(&b, data); err != nil {
		return data
	}
	return b.Bytes()
}

// spaceOutsideStrings reports whether valid JSON holds whitespace that is
// not inside a string.
func spaceOutsideStrings(data []byte) bool {
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return true
		}
	}
	return false
}
