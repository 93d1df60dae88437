package wspush

import "encoding/json"

// Message is one publication: a JSON value for the subscribers of a channel,
// or for every connection when Broadcast is set.
type Message struct {
	// Channel the message is published to; empty when Broadcast is set.
	Channel string
	// Data is the published JSON value, already validated. Its bytes are
	// shared by every subscriber and must not be modified after publishing.
	Data json.RawMessage
	// Broadcast delivers the message to every connection on every node,
	// whatever it is subscribed to.
	Broadcast bool
}

// MaxChannelLength is the longest channel name the protocol allows, in bytes.
const MaxChannelLength = 255

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
