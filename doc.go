// Package wspush holds the domain of the wspush push server: the messages it
// moves, the Broker contract that carries them between nodes, channel names,
// and the errors every layer shares.
//
// The package imports nothing else of the module. Adapters (the WebSocket
// transport, the HTTP API, the brokers) meet only through the types defined
// here; cmd/wspush wires them together.
package wspush
