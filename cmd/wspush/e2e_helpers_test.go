package main

import (
	"bytes"
	"encoding/json"
	"errors"
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
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
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
