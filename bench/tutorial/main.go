// Command tutorial is a MEASUREMENT BASELINE, NOT PRODUCT CODE: the push
// server of the tutorial wspush grew from (seed/000_3522875951ec86c6.txt,
// section 4, "封装Websocket"), built the tutorial's way so that `wspush bench
// --proto seed` can measure wspush against it in the same run, on the same
// machine. Do not use it for anything else and do not "improve" it: its
// figures are only meaningful while it stays the tutorial's design.
//
//	go run ./bench/tutorial [--addr 127.0.0.1:7780]
//	wspush bench conns  --proto seed --url ws://127.0.0.1:7780/ws -n 15000 --pid PID
//	wspush bench fanout --proto seed --url ws://127.0.0.1:7780/ws --api http://127.0.0.1:7780/push -n 1000 --rate 25
//
// Kept from the tutorial: gorilla/websocket with 1024-byte read and write
// buffers and any origin allowed; GET /ws; per connection a Connection
// wrapper with a readLoop and a writeLoop goroutine, two 1000-slot
// channels inChan and outChan and a closeChan; a heartbeat goroutine that
// writes "heartbeat" every second; the handler goroutine echoing what the
// client sends. So an idle connection holds four goroutines (the handler's
// own, readLoop, writeLoop, heartbeat), two 1000-slot channels and
// gorilla's buffers. The tutorial names a push handler for backends but
// does not show it; here POST /push sends the request body, as is, as one
// text frame to every connection (a broadcast), through each connection's
// outChan, which is what its description says.
//
// Fixed, because each would make measurements meaningless:
//   - writeLoop read outChan twice per iteration and wrote only the second
//     message, dropping every other push (and blocking on the second read
//     after a close): it now writes every message it takes.
//   - wsHandler's error path did nothing ("// 关闭当前连接" with no code): it
//     now closes the connection and removes it from the push registry, so
//     connections do not stay registered after they end.
//   - A full outChan blocked WriteMessage, so one slow client would stall
//     the push handler (and every later push) forever: the push handler
//     now closes a connection whose outChan is full instead, as wspush
//     closes a slow consumer. Heartbeats and echoes still block as before.
//
// Added for measurement only: the registry of connections /push needs, the
// --addr flag, and a default address on loopback (port 7780).
package main

import (
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	CheckOrigin:     func(r *http.Request) bool { return true }, // as the tutorial: any origin
}

// Connection is the tutorial's wrapper around a WebSocket connection.
type Connection struct {
	wsConn    *websocket.Conn
	inChan    chan []byte
	outChan   chan []byte
	closeChan chan byte
	mutex     sync.Mutex
	isClosed  bool
}

// InitConnection wraps wsConn and starts its read and write loops.
func InitConnection(wsConn *websocket.Conn) (*Connection, error) {
	conn := &Connection{
		wsConn:    wsConn,
		inChan:    make(chan []byte, 1000),
		outChan:   make(chan []byte, 1000),
		closeChan: make(chan byte, 1),
	}
	go conn.readLoop()
	go conn.writeLoop()
	return conn, nil
}

// ReadMessage returns the next message the client sent.
func (conn *Connection) ReadMessage() ([]byte, error) {
	select {
	case data := <-conn.inChan:
		return data, nil
	case <-conn.closeChan:
		return nil, errors.New("connection is closed")
	}
}

// WriteMessage queues data for the client, waiting while outChan is full.
func (conn *Connection) WriteMessage(data []byte) error {
	select {
	case conn.outChan <- data:
		return nil
	case <-conn.closeChan:
		return errors.New("connection is closed")
	}
}

// Close closes the connection; it may be called many times, concurrently.
func (conn *Connection) Close() {
	conn.wsConn.Close()
	conn.mutex.Lock()
	if !conn.isClosed {
		close(conn.closeChan)
		conn.isClosed = true
	}
	conn.mutex.Unlock()
}

func (conn *Connection) readLoop() {
	for {
		_, data, err := conn.wsConn.ReadMessage()
		if err != nil {
			break
		}
		select {
		case conn.inChan <- data:
		case <-conn.closeChan:
			conn.Close()
			return
		}
	}
	conn.Close()
}

func (conn *Connection) writeLoop() {
	for {
		var data []byte
		select {
		case data = <-conn.outChan: // FIXED: the tutorial read outChan a second time here
		case <-conn.closeChan:
			conn.Close()
			return
		}
		if err := conn.wsConn.WriteMessage(websocket.TextMessage, data); err != nil {
			break
		}
	}
	conn.Close()
}

// registry is every open connection, for the push handler. (Added.)
var registry = struct {
	sync.Mutex
	conns map[*Connection]struct{}
}{conns: map[*Connection]struct{}{}}

func wsHandler(w http.ResponseWriter, r *http.Request) {
	wsConn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn, _ := InitConnection(wsConn)
	registry.Lock()
	registry.conns[conn] = struct{}{}
	registry.Unlock()

	go func() { // heartbeat, as the tutorial
		for {
			if err := conn.WriteMessage([]byte("heartbeat")); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()

	for { // echo, as the tutorial
		data, err := conn.ReadMessage()
		if err != nil {
			break
		}
		if err := conn.WriteMessage(data); err != nil {
			break
		}
	}
	// FIXED: the tutorial's error path was empty.
	conn.Close()
	registry.Lock()
	delete(registry.conns, conn)
	registry.Unlock()
}

// pushHandler sends the request body to every connection (broadcast).
func pushHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var full []*Connection
	registry.Lock()
	for conn := range registry.conns {
		select {
		case conn.outChan <- data:
		default: // FIXED: a full outChan blocked the push handler forever
			full = append(full, conn)
		}
	}
	registry.Unlock()
	for _, conn := range full {
		conn.Close()
	}
	w.WriteHeader(http.StatusOK)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:7780", "address to listen on")
	flag.Parse()
	http.HandleFunc("/ws", wsHandler)
	http.HandleFunc("/push", pushHandler)
	log.Printf("tutorial-style baseline (measurement only, not product code) listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
