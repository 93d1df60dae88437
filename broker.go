package wspush

import "context"

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
	Publish(ctx context.Context, m *Message) error

	// Subscribe declares that this node has local subscribers of channel.
	// When it returns nil, messages published to channel afterwards reach
	// this node. Calls for one channel are serialized by the caller.
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
