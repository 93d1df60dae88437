package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive the embedded chat page (internal/web/static) in
// headless Chromium. Pages are always loaded from the wspush server under
// test: Chromium blocks a WebSocket to 127.0.0.1 from a page served
// elsewhere. They skip when no Chromium is installed, unless
// WSPUSH_REQUIRE_BROWSER=1.

// browserWait bounds each wait for the page; generous, for loaded CI
// machines. A passing test waits far less.
const browserWait = 15 * time.Second

// chromiumPath returns the Chromium to run, or "".
func chromiumPath() string {
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a headless Chromium that stops when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("WSPUSH_REQUIRE_BROWSER") == "1" {
			t.Fatal("chromium not found and WSPUSH_REQUIRE_BROWSER=1 (apt-get install -y chromium)")
		}
		t.Skip("chromium not found; set WSPUSH_REQUIRE_BROWSER=1 to fail instead")
	}
	// No UserDataDir option: chromedp then makes a fresh profile directory,
	// and after the browser exits it kills the browser's leftover child
	// processes before it removes the directory. A t.TempDir would race
	// with those children and fail the cleanup.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Close the browser gracefully, then wait for the allocator's
		// goroutines, so that goleak finds none left.
		_ = chromedp.Cancel(ctx)
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// browserTab is one page in its own browser context (its own localStorage).
type browserTab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu         sync.Mutex
	requests   []string // URLs of every request the page made
	exceptions []string // uncaught exceptions and unhandled rejections
}

// newBrowserTab opens a tab in a new browser context of browser (so with
// its own localStorage) and navigates it to url. The page must not throw: an
// uncaught exception or unhandled rejection fails the test.
func newBrowserTab(t *testing.T, browser context.Context, name, url string) *browserTab {
	t.Helper()
	tb := &browserTab{t: t, name: name}
	ctx, cancel := chromedp.NewContext(browser,
		chromedp.WithNewBrowserContext(),
		chromedp.WithListener(tb.listen),
	)
	tb.ctx = ctx
	t.Cleanup(func() {
		cancel()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.exceptions {
			t.Errorf("%s: page exception: %s", name, e)
		}
	})
	if err := chromedp.Do(ctx); err != nil { // opens the tab, with no deadline
		t.Fatalf("%s: open tab: %v", name, err)
	}
	tb.do(chromedp.Navigate(url))
	tb.wait("the page to load", `document.readyState === "complete" && typeof Wspush === "function"`)
	return tb
}

// listen runs on chromedp's event loop: it must return fast.
func (tb *browserTab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, ev.Request.URL)
	case *network.EventWebSocketCreated:
		tb.requests = append(tb.requests, ev.URL)
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		tb.exceptions = append(tb.exceptions, msg)
	}
}

// do runs actions on the page with a deadline.
func (tb *browserTab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", tb.name, err, tb.dump())
	}
}

// browserEval evaluates a JavaScript expression and decodes its value into T.
func browserEval[T any](tb *browserTab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// wait polls a JavaScript condition until it is true or browserWait passes.
func (tb *browserTab) wait(what, cond string) {
	tb.t.Helper()
	deadline := time.Now().Add(browserWait)
	var last error
	for {
		ok, err := browserEval[bool](tb, "!!("+cond+")")
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err // e.g. the page is navigating: try again
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: timed out after %v waiting for %s (last error: %v)\n%s", tb.name, browserWait, what, last, tb.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitState waits for the page's connection indicator to show state.
func (tb *browserTab) waitState(state string) {
	tb.t.Helper()
	tb.wait("state "+state, fmt.Sprintf(`(function () {
		var s = document.getElementById("state");
		return s && s.textContent === %[1]s && s.dataset.state === %[1]s;
	})()`, jsLit(state)))
}

// dump describes the page for a failure message.
func (tb *browserTab) dump() string {
	s, err := browserEval[string](tb, `(function () {
		var s = document.getElementById("state");
		var m = document.getElementById("messages");
		return "state=" + (s && s.dataset.state) + "\nmessages:\n" + (m ? m.innerText : "(none)");
	})()`)
	if err != nil {
		return "(page unavailable: " + err.Error() + ")"
	}
	return s
}

// join fills in the join form and waits until the chat is connected.
func (tb *browserTab) join(name, room string) {
	tb.t.Helper()
	tb.do(
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("name").value = ""; document.getElementById("room").value = ""`),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.SendKeys(chromedp.ID("room"), room),
		chromedp.Click(chromedp.ID("join")),
		chromedp.WaitVisible(chromedp.ID("messages")),
	)
	tb.waitState("connected")
	// The subscription is in place once the server answered it; until
	// then a message to the room could be missed.
	tb.wait("the room subscription", `document.getElementById("chat").dataset.joined === "true"`)
}

// say types text into the message box and presses Enter.
func (tb *browserTab) say(text string) {
	tb.t.Helper()
	tb.do(
		chromedp.SendKeys(chromedp.ID("input"), text),
		pressEnter(0),
	)
	tb.wait("the message box to clear after Enter", `document.getElementById("input").value === ""`)
}

// waitMessage waits for a chat line from user with text, and a time.
func (tb *browserTab) waitMessage(user, text string) {
	tb.t.Helper()
	tb.wait(fmt.Sprintf("message %q from %q", text, user), fmt.Sprintf(`Array.from(document.querySelectorAll("#messages .msg")).some(function (m) {
		var u = m.querySelector(".user"), x = m.querySelector(".text"), t = m.querySelector(".time");
		return u && x && t && u.textContent === %s && x.textContent === %s && t.textContent.trim() !== "";
	})`, jsLit(user), jsLit(text)))
}

// waitNotice waits for a notice whose text contains part.
func (tb *browserTab) waitNotice(part string) {
	tb.t.Helper()
	tb.wait(fmt.Sprintf("a notice with %q", part), fmt.Sprintf(`Array.from(document.querySelectorAll("#messages .notice")).some(function (n) {
		return n.textContent.indexOf(%s) >= 0;
	})`, jsLit(part)))
}

// shiftKey is the Shift bit of CDP's key event modifiers.
const shiftKey = 8

// pressEnter presses and releases Enter (with Shift if modifiers says so) as
// a keyboard does: one keyDown that carries the "\r" character, then keyUp.
// The character is typed unless the page cancels the keydown. (SendKeys's
// "\n" sends the character as a separate event that a page cannot cancel.)
func pressEnter(modifiers int64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
			p := input.DispatchKeyEventParams{
				Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
				Modifiers: modifiers,
			}
			if typ == input.DispatchKeyEventTypeKeyDown {
				p.Text, p.UnmodifiedText = "\r", "\r"
			}
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// jsLit is v as a JavaScript literal.
func jsLit(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// roomChannel is the chat page's channel for a room (channelFor in
// chat.js): "room-" and the name's UTF-8 bytes, kept when in [A-Za-z0-9_-],
// else written as $hh.
func roomChannel(room string) string {
	var b strings.Builder
	b.WriteString("room-")
	for _, c := range []byte(room) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "$%02x", c)
		}
	}
	return b.String()
}

// browserPost sends an API request and wants 200.
func browserPost(t *testing.T, url, contentType, body string) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %s", url, resp.Status, b)
	}
}

func TestBrowserChat(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	a := newBrowserTab(t, browser, "tab A", s.URL+"/")
	b := newBrowserTab(t, browser, "tab B", s.URL+"/")
	a.join("Alice", "lobby")
	b.join("小明", "lobby")

	a.say("你好 hello from A")
	a.waitMessage("Alice", "你好 hello from A")
	b.waitMessage("Alice", "你好 hello from A")

	// Text is text: markup in a message is shown, never run.
	reply := `<img src=x onerror="window.__xss=1"> <b>hi</b> & bye`
	b.say(reply)
	a.waitMessage("小明", reply)
	b.waitMessage("小明", reply)
	for _, tb := range []*browserTab{a, b} {
		bad, err := browserEval[bool](tb, `window.__xss !== undefined || document.querySelector("#messages img, #messages b") !== null`)
		if err != nil || bad {
			t.Errorf("%s: message text was rendered as HTML (err %v)", tb.name, err)
		}
	}

	// Shift+Enter is a new line, not a send.
	a.do(chromedp.SendKeys(chromedp.ID("input"), "line 1"), pressEnter(shiftKey), chromedp.SendKeys(chromedp.ID("input"), "line 2"))
	a.wait("a two-line draft", `document.getElementById("input").value === "line 1\nline 2"`)
	a.do(pressEnter(0))
	b.waitMessage("Alice", "line 1\nline 2")

	// The name and room are remembered for the next visit.
	name, err := browserEval[string](a, `localStorage.getItem("wspush.chat.name") + "/" + localStorage.getItem("wspush.chat.room")`)
	if err != nil || name != "Alice/lobby" {
		t.Errorf("remembered %q, %v; want Alice/lobby", name, err)
	}
}

func TestBrowserShowsAPIMessagesAndBroadcasts(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	p := newBrowserTab(t, browser, "page", s.URL+"/")
	room := "新闻 news"
	ch := roomChannel(room)
	if ch != "room-$e6$96$b0$e9$97$bb$20news" {
		t.Fatalf("roomChannel(%q) = %q", room, ch)
	}
	p.join("Ada", room)
	if hint, err := browserEval[string](p, `document.getElementById("curl-hint").textContent`); err != nil || !strings.HasSuffix(hint, "/api/publish/"+ch) {
		t.Errorf("the page's curl hint %q (err %v) does not name channel %s", hint, err, ch)
	}

	// A raw body is the JSON string "hello from api", sent by "api".
	browserPost(t, s.URL+"/api/publish/"+ch, "text/plain", "hello from api")
	p.waitMessage("api", "hello from api")

	// Other JSON shows as JSON; a chat line from a backend keeps its sender.
	browserPost(t, s.URL+"/api/publish", "application/json", `{"channel":`+jsLit(ch)+`,"data":{"n":1}}`)
	p.waitMessage("api", `{"n":1}`)
	browserPost(t, s.URL+"/api/publish", "application/json", `{"channel":`+jsLit(ch)+`,"data":{"user":"bot","text":"beep"}}`)
	p.waitMessage("bot", "beep")

	// Another room's messages stay out.
	browserPost(t, s.URL+"/api/publish/room-other", "text/plain", "not for news")

	browserPost(t, s.URL+"/api/broadcast", "application/json", `{"data":"maintenance"}`)
	p.waitNotice("maintenance")
	p.wait("the broadcast notice style", `document.querySelector("#messages .notice.broadcast") !== null`)

	if n, err := browserEval[int](p, `document.querySelectorAll("#messages .msg").length`); err != nil || n != 3 {
		t.Errorf("%d messages (err %v), want 3\n%s", n, err, p.dump())
	}
}

func TestBrowserReconnectsAfterServerRestart(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	p := newBrowserTab(t, browser, "page", s.URL+"/")
	p.join("Ada", "restart")
	p.say("before")
	p.waitMessage("Ada", "before")

	addr := s.Addr
	if err := s.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	p.waitState("disconnected")
	p.waitNotice("reconnecting")

	// A new server on the same address. startServer passes
	// --addr 127.0.0.1:0 first; the later flag wins.
	waitPortFree(t, addr)
	s2 := startServer(t, "--addr", addr)
	if s2.Addr != addr {
		t.Fatalf("restarted on %s, want %s", s2.Addr, addr)
	}
	p.waitState("connected")
	p.wait("the room subscription again", `document.getElementById("chat").dataset.joined === "true"`)
	p.waitNotice("Reconnected")

	// Resubscribed: its own message and the API's both arrive.
	p.say("after")
	p.waitMessage("Ada", "after")
	browserPost(t, s2.URL+"/api/publish/"+roomChannel("restart"), "text/plain", "api after")
	p.waitMessage("api", "api after")
}

// waitPortFree waits until addr can be bound, so that a server can restart
// on it.
func waitPortFree(t *testing.T, addr string) {
	t.Helper()
	eventually(t, browserWait, addr+" to be free", func() bool {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		ln.Close()
		return true
	})
}

func TestBrowserLoadsNothingFromOutside(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	p := newBrowserTab(t, browser, "page", s.URL+"/")
	p.join("Ada", "local")
	p.say("hi")
	p.waitMessage("Ada", "hi")

	// What the page itself says it loaded, besides what DevTools saw.
	entries, err := browserEval[[]string](p, `performance.getEntries().map(function (e) { return e.name; }).filter(function (n) { return /^[a-z]+:/.test(n); })`)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	urls := append(append([]string(nil), p.requests...), entries...)
	p.mu.Unlock()

	origins := []string{s.URL + "/", "ws://" + s.Addr + "/"}
	seen := map[string]bool{}
	for _, u := range urls {
		seen[u] = true
		ok := false
		for _, o := range origins {
			ok = ok || strings.HasPrefix(u, o)
		}
		if !ok {
			t.Errorf("the page loaded %s, from outside %s", u, s.URL)
		}
	}
	for _, want := range []string{s.URL + "/", s.URL + "/wspush.js", s.URL + "/chat.js", s.URL + "/chat.css", s.WS} {
		if !seen[want] {
			t.Errorf("no request for %s seen; the recording misses something: %q", want, urls)
		}
	}
}

// TestBrowserClientAPI uses wspush.js directly: promises settle by reply,
// errors carry the server's code, and the ES module wrapper works.
func TestBrowserClientAPI(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	p := newBrowserTab(t, browser, "page", s.URL+"/")

	got, err := browserEval[map[string]any](p, `(async function () {
		const { Wspush: W, default: D } = await import("/wspush.mjs");
		if (W !== window.Wspush || D !== W) throw new Error("wspush.mjs exports the wrong class");
		const c = new W();
		const states = [];
		c.on("state", (e) => states.push(e.state));
		const msgs = [];
		c.on("message", (m) => msgs.push(m));
		const welcome = new Promise((resolve) => c.on("welcome", resolve));
		const sub = c.subscribe("api-test"); // waits for the connection
		c.connect();
		const w = await welcome;
		await sub;
		await c.publish("api-test", {x: 1});
		let code = "";
		try { await c.subscribe("bad channel!"); } catch (e) { code = e.code; }
		let off = "";
		try { await c.publish("ns:x", 1); } catch (e) { off = e.code; }
		await c.ping();
		while (msgs.length < 1) await new Promise((r) => setTimeout(r, 10));
		c.close();
		let closed = "";
		try { await c.publish("api-test", 2); } catch (e) { closed = e.code; }
		return {client_id: w.client_id, states: states.join(","), code, off, closed,
			channels: c.channels.join(","), msg: JSON.stringify(msgs[0])};
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"states":   "connecting,connected,disconnected",
		"code":     "bad_request",
		"closed":   "disconnected",
		"channels": "api-test",
		"msg":      `{"channel":"api-test","data":{"x":1}}`,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if id, _ := got["client_id"].(string); id == "" {
		t.Errorf("no client_id in welcome: %v", got)
	}
	if off, _ := got["off"].(string); off == "" {
		t.Errorf("publish to an unknown namespace was accepted: %v", got)
	}
}
