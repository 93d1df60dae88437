package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// historyConfig writes a config file with a namespace "chat" that keeps
// history (size messages), presence and join/leave, and returns its path.
func historyConfig(t *testing.T, size int, ttl string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wspush.yaml")
	cfg := fmt.Sprintf(`namespaces:
  - name: chat
    history_size: %d
    history_ttl: %s
    presence: true
    join_leave: true
    client_publish: true
`, size, ttl)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRecoveryAfterReconnect(t *testing.T) {
	s := startServer(t, "--config", historyConfig(t, 100, "10m"))
	a := dial(t, s.WS, nil)
	r := a.call(1, `{"id":1,"op":"subscribe","channel":"chat:r"}`)
	if !r.OK {
		t.Fatalf("subscribe: %+v", r.Error)
	}
	for i := 1; i <= 3; i++ {
		publishJSON(t, s, "chat:r", fmt.Sprint(i))
	}
	var last frame
	for i := 1; i <= 3; i++ {
		last = a.nextMessage()
		if last.Type != "message" || string(last.Data) != fmt.Sprint(i) || last.Offset != uint64(i) || last.Epoch == "" {
			t.Fatalf("message %d: %+v", i, last)
		}
	}
	a.Close()
	// Missed while away.
	for i := 4; i <= 6; i++ {
		publishJSON(t, s, "chat:r", fmt.Sprint(i))
	}
	b := dial(t, s.WS, nil)
	b.send(fmt.Sprintf(`{"id":2,"op":"subscribe","channel":"chat:r","since":{"offset":%d,"epoch":%q}}`, last.Offset, last.Epoch))
	f := b.nextMessage()
	if f.Type != "reply" || !f.OK || f.Recovered == nil || !*f.Recovered || f.Offset != 6 || f.Epoch != last.Epoch {
		t.Fatalf("subscribe reply %+v, want recovered at offset 6", f)
	}
	for i := 4; i <= 6; i++ {
		if m := b.nextMessage(); m.Type != "message" || m.Offset != uint64(i) || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("recovered message %d: %+v", i, m)
		}
	}
	publishJSON(t, s, "chat:r", "7")
	if m := b.nextMessage(); m.Offset != 7 {
		t.Fatalf("live message after recovery: %+v", m)
	}
}
