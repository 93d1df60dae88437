// Package client is the Go client of wspush: API publishes from a backend
// (Publish, Broadcast) and a WebSocket connection speaking the native
// protocol (Dial, Subscribe, Messages).
//
//	api := client.NewAPI("http://localhost:7777", "secret")
//	err := api.Publish(ctx, "chat", map[string]string{"text": "hi"})
//
//	c, err := client.Dial(ctx, "ws://localhost:7777/ws", nil)
//	err = c.Subscribe(ctx, "chat")
//	for m := range c.Messages() { ... }
package client
