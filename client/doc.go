// Package client is the Go client of wspush: API publishes from a backend
// (Publish, Broadcast), a WebSocket connection speaking the native
// protocol (Dial, Subscribe, Messages), and a Client that keeps one up,
// reconnecting and recovering what it missed (NewClient).
//
//	api := client.NewAPI("http://localhost:7777", "secret")
//	err := api.Publish(ctx, "chat", map[string]string{"text": "hi"})
//
//	c, err := client.Dial(ctx, "ws://localhost:7777/ws", nil)
//	err = c.Subscribe(ctx, "chat")
//	for m := range c.Messages() { ... }
//
//	cl := client.NewClient("ws://localhost:7777/ws", nil)
//	defer cl.Close()
//	err = cl.Subscribe(ctx, "chat:room1", nil)
//	for m := range cl.Messages() { ... } // a "reset" push marks a gap
package client
