package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// frame is any server frame, decoded loosely for assertions.
type frame struct {
	Type      string          `json:"type"`
	ID        *int64          `json:"id"`
	OK        bool            `json:"ok"`
	Channel   string          `json:"channel"`
	Data      json.RawMessage `json:"data"`
	ClientID  string          `json:"client_id"`
	Channels  []string        `json:"channels"`
	Offset    uint64          `json:"offset"`
	Epoch     string          `json:"epoch"`
	Recovered *bool           `json:"recovered"`
	Complete  *bool           `json:"complete"`
	// History replies.
	Messages []historyEntry `json:"messages"`
	// Presence replies, and join and leave pushes.
	Clients    []clientInfo `json:"clients"`
	Client     *clientInfo  `json:"client"`
	NumClients *int         `json:"num_clients"`
	NumUsers   *int         `json:"num_users"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	// raw is the frame as received.
	raw string
}

// wsConn is a raw WebSocket test client: it sends exactly what a test says.
type wsConn struct {
	*websocket.Conn
	t       testing.TB
	Welcome frame
}

// dial connects to url and reads the welcome frame.
func dial(t testing.TB, url string, header http.Header) *wsConn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	w := &wsConn{Conn: c, t: t}
	w.Welcome = w.next()
	if w.Welcome.Type != "welcome" || w.Welcome.ClientID == "" {
		t.Fatalf("first frame %+v, want a welcome with a client_id", w.Welcome)
	}
	return w
}

// send writes one text frame.
func (c *wsConn) send(s string) {
	c.t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads the next frame, failing the test after 10 s.
func (c *wsConn) next() frame {
	c.t.Helper()
	f, err := c.read(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *wsConn) read(d time.Duration) (frame, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, b, err := c.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame is not JSON: %q", b)
	}
	f.raw = string(b)
	return f, nil
}

// nextMessage reads the next frame that is not a join or leave.
func (c *wsConn) nextMessage() frame {
	c.t.Helper()
	for {
		if f := c.next(); f.Type != "join" && f.Type != "leave" {
			return f
		}
	}
}

// reply reads frames until the reply with id and returns it.
func (c *wsConn) reply(id int64) frame {
	c.t.Helper()
	for {
		f := c.next()
		if f.Type == "reply" && f.ID != nil && *f.ID == id {
			return f
		}
	}
}

// call sends a command with id and returns its reply.
func (c *wsConn) call(id int64, cmd string) frame {
	c.t.Helper()
	c.send(cmd)
	return c.reply(id)
}

// subscribe subscribes and requires success.
func (c *wsConn) subscribe(channel string) {
	c.t.Helper()
	if r := c.call(900, `{"id":900,"op":"subscribe","channel":"`+channel+`"}`); !r.OK {
		c.t.Fatalf("subscribe %s: %+v", channel, r.Error)
	}
}

// expectClose reads until the connection closes and checks the close code.
func (c *wsConn) expectClose(code int) {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended with %v, want close code %d", err, code)
		}
		if ce.Code != code {
			c.t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, code)
		}
		return
	}
}

// apiResponse is an HTTP answer, body read.
type apiResponse struct {
	Status int
	Header http.Header
	Body   string
}

// errorCode returns the error code of a JSON error body.
func (r apiResponse) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(r.Body), &e)
	return e.Error.Code
}

// post sends a request and reads the whole answer.
func post(t testing.TB, method, url, contentType, body string, header http.Header) apiResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiResponse{resp.StatusCode, resp.Header, string(b)}
}

// publishJSON posts {"channel":ch,"data":data} and requires 200.
func publishJSON(t testing.TB, s *server, ch, data string) {
	t.Helper()
	r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":"`+ch+`","data":`+data+`}`, nil)
	if r.Status != 200 || !strings.HasPrefix(r.Body, `{"ok":true`) {
		t.Fatalf("publish: %d %s", r.Status, r.Body)
	}
}

// metric returns the value of a metric line of /metrics ("name" or
// `name{label="x"}`), or -1 when absent.
func metric(t testing.TB, s *server, name string) float64 {
	t.Helper()
	r := post(t, "GET", s.URL+"/metrics", "", "", nil)
	for line := range strings.SplitSeq(r.Body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// smallBufferDialer dials with a fixed 64 KiB receive buffer (no
// autotuning), so that a client that stops reading backs up into the
// server's queue sooner. (Much smaller buffers stall loopback TCP, whose
// segments are 32 KiB and more.)
var smallBufferDialer = &websocket.Dialer{
	NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		return c, nil
	},
	HandshakeTimeout: 10 * time.Second,
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func compactJSON(t testing.TB, s string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact %q: %v", s, err)
	}
	return b.String()
}

// historyEntry is one message of a history answer.
type historyEntry struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
}

// clientInfo is a client in presence answers and in join and leave pushes.
type clientInfo struct {
	ClientID string          `json:"client_id"`
	UserID   string          `json:"user_id"`
	Info     json.RawMessage `json:"info"`
}

// position is a place in a channel's history, as the server reports it.
type position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// since is the JSON of a subscribe's or a history's since field.
func (p position) since() string {
	return fmt.Sprintf(`{"offset":%d,"epoch":%s}`, p.Offset, jsonString(p.Epoch))
}

// publishAt posts {"channel":ch,"data":data}, requires 200 with a position
// ({"ok":true,"offset":N,"epoch":"E"}) and returns it.
func publishAt(t testing.TB, s *server, ch, data string) position {
	t.Helper()
	r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":"`+ch+`","data":`+data+`}`, nil)
	var a struct {
		OK bool `json:"ok"`
		position
	}
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &a) != nil || !a.OK || a.Offset == 0 || a.Epoch == "" {
		t.Fatalf("publish to %s: %d %s, want 200 with an offset and an epoch", ch, r.Status, r.Body)
	}
	return a.position
}

// getJSON GETs url, requires 200 with a JSON body and decodes it into v.
func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	r := post(t, "GET", url, "", "", nil)
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s", url, r.Status, r.Body)
	}
	dec := json.NewDecoder(strings.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, r.Body)
	}
}

// waitAddrFree waits until addr can be bound again, so that a server can
// restart on it.
func waitAddrFree(t testing.TB, addr string) {
	t.Helper()
	eventually(t, 15*time.Second, addr+" to be free", func() bool {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		ln.Close()
		return true
	})
}

// pumpWait bounds every wait of a pump: generous, for loaded machines.
const pumpWait = 15 * time.Second

// pump reads a connection's frames in the background, so that the client
// answers the server's pings all along (gorilla answers them as it reads)
// and no push is lost while the test does something else.
type pump struct {
	c       *wsConn
	frames  chan frame
	err     error   // why reading stopped; read once frames is closed
	pending []frame // read by call while it looked for its reply
}

// pump starts reading c in the background; c must not be read otherwise.
// The reader stops when the test ends.
func (c *wsConn) pump() *pump {
	p := &pump{c: c, frames: make(chan frame, 1<<14)}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		defer close(p.frames)
		_ = c.SetReadDeadline(time.Time{})
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				p.err = err
				return
			}
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				p.err = fmt.Errorf("frame is not JSON: %q", b)
				return
			}
			f.raw = string(b)
			select {
			case p.frames <- f:
			case <-done:
				return
			}
		}
	}()
	c.t.Cleanup(func() {
		close(done)
		c.Close()
		<-stopped
	})
	return p
}

// next returns the next frame, failing the test when none comes in time
// or the connection ended.
func (p *pump) next() frame {
	p.c.t.Helper()
	if len(p.pending) > 0 {
		f := p.pending[0]
		p.pending = p.pending[1:]
		return f
	}
	select {
	case f, ok := <-p.frames:
		if !ok {
			p.c.t.Fatalf("connection ended: %v", p.err)
		}
		return f
	case <-time.After(pumpWait):
		p.c.t.Fatalf("no frame within %v", pumpWait)
		return frame{}
	}
}

// call sends a command with id and returns its reply; the frames that came
// before it are kept for next.
func (p *pump) call(id int64, cmd string) frame {
	p.c.t.Helper()
	p.c.send(cmd)
	var before []frame
	for {
		f := p.next()
		if f.Type == "reply" && f.ID != nil && *f.ID == id {
			p.pending = append(before, p.pending...)
			return f
		}
		before = append(before, f)
	}
}

// expectClose reads until the connection ends and checks the close code.
func (p *pump) expectClose(code int) {
	p.c.t.Helper()
	p.pending = nil
	deadline := time.After(pumpWait)
	for {
		select {
		case _, ok := <-p.frames:
			if ok {
				continue
			}
			var ce *websocket.CloseError
			if !errors.As(p.err, &ce) || ce.Code != code {
				p.c.t.Fatalf("connection ended with %v, want close code %d", p.err, code)
			}
			return
		case <-deadline:
			p.c.t.Fatalf("connection still open after %v, want close code %d", pumpWait, code)
		}
	}
}
