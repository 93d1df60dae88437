package wspush

import (
	"context"
	"time"
)

// Broker moves published messages between the nodes of a cluster. It knows
// nothing of WebSockets: it takes messages from Publish on any node and hands
// them to the Handler of every node that has shown interest in the channel.
//
// Implementations document their delivery guarantees. Every implementation
// must pass the conformance suite in internal/brokertest.
type Broker interface {
	// Publish sends m to every node with subscribers of m.Channel (every
	// node, if m.Broadcast), this one included. Messages published one after
	// another from one goroutine reach each node in the same order. When
	// Publish returns nil the broker has accepted the message.
	//
	// With opts.HistorySize > 0 (a publication to a channel that keeps
	// history), the broker also appends m to the channel's history, gives it
	// the channel's next offset and its epoch (set in m before any node
	// receives it) and returns its position. Every node receives a channel's
	// messages in offset order. Publish does not keep m after it returns.
	Publish(ctx context.Context, m *Message, opts PublishOptions) (StreamPosition, error)

	// Subscribe declares that this node has local subscribers of channel.
	// When it returns nil, messages published to channel afterwards reach
	// this node; for a channel with history, so does every message whose
	// offset is above the position a History read returns afterwards
	// (recovery relies on it). Calls for one channel are serialized by the
	// caller.
	Subscribe(ctx context.Context, channel string) error

	// Unsubscribe withdraws the interest declared by Subscribe.
	Unsubscribe(ctx context.Context, channel string) error

	// Run delivers messages for this node to h until ctx is done, then
	// returns nil, or returns the error that stopped it. Run is called once;
	// Publish and Subscribe may be called before it starts.
	Run(ctx context.Context, h Handler) error

	// Ready reports whether the broker can carry messages now (nil), or why
	// not. /readyz answers from it.
	Ready() error
}

// Handler receives the messages a Broker delivers to this node. It must not
// block: it hands each message to local subscribers and returns.
type Handler interface {
	HandleMessage(m *Message)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(m *Message)

// HandleMessage calls f(m).
func (f HandlerFunc) HandleMessage(m *Message) { f(m) }

// PublishOptions say how a broker keeps a publication.
type PublishOptions struct {
	// HistorySize is how many messages the channel's history keeps; 0
	// keeps none (and assigns no offset).
	HistorySize int
	// HistoryTTL is how long a message stays in the history; the history
	// of a channel without publications for this long is dropped, and the
	// channel gets a new epoch.
	HistoryTTL time.Duration
}

// History is implemented by brokers that keep channel history.
type History interface {
	// History reads channel's history. It returns the channel's current
	// position even when the history is empty.
	History(ctx context.Context, channel string, q HistoryQuery) (HistoryResult, error)
}

// HistoryQuery selects messages of a channel's history.
type HistoryQuery struct {
	// Since, if set, asks for the messages after Since.Offset, oldest
	// first. Without it, the newest Limit messages are returned, oldest
	// first.
	Since *StreamPosition
	// Limit bounds the messages returned; 0 or less means all kept.
	Limit int
}

// HistoryResult is the answer to a HistoryQuery.
type HistoryResult struct {
	Messages []*Message
	// Position is the channel's latest offset and its epoch.
	Position StreamPosition
	// Complete is set, for a query with Since, when Since is in the current
	// epoch and no message after it has been dropped from the history yet:
	// Messages (with Limit permitting) are exactly what came after Since.
	Complete bool
}

// Presence is implemented by brokers that know who is subscribed where.
type Presence interface {
	// AddPresence records that c is subscribed to channel. An entry not
	// refreshed within ttl may expire (0: it lasts until removed).
	AddPresence(ctx context.Context, channel string, c ClientInfo, ttl time.Duration) error
	// RemovePresence forgets that the client is subscribed to channel.
	RemovePresence(ctx context.Context, channel, clientID string) error
	// Presence returns the clients subscribed to channel, by client id.
	Presence(ctx context.Context, channel string) (map[string]ClientInfo, error)
	// PresenceStats counts the clients and distinct users of channel.
	PresenceStats(ctx context.Context, channel string) (PresenceStats, error)
}

// PresenceStats counts a channel's subscribers.
type PresenceStats struct {
	Clients int `json:"num_clients"`
	Users   int `json:"num_users"` // distinct non-empty user ids
}

// CountPresence counts the clients and distinct non-empty user ids of a
// channel's presence, for brokers' PresenceStats.
func CountPresence(clients map[string]ClientInfo) PresenceStats {
	users := make(map[string]struct{}, len(clients))
	for _, c := range clients {
		if c.UserID != "" {
			users[c.UserID] = struct{}{}
		}
	}
	return PresenceStats{Clients: len(clients), Users: len(users)}
}
