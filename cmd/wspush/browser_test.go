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
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc // closes the tab

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
	tb.ctx, tb.cancel = ctx, cancel
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

// chatLine is a message as the page shows it.
type chatLine struct {
	User, Text string
	Earlier    bool // loaded from the history
}

func (l chatLine) String() string {
	if l.Earlier {
		return l.User + ": " + l.Text + " (earlier)"
	}
	return l.User + ": " + l.Text
}

// lines returns the messages the page shows, in order.
func (tb *browserTab) lines() []chatLine {
	tb.t.Helper()
	got, err := browserEval[[]chatLine](tb, `Array.from(document.querySelectorAll("#messages .msg")).map(function (m) {
		return {User: m.querySelector(".user").textContent, Text: m.querySelector(".text").textContent, Earlier: m.classList.contains("earlier")};
	})`)
	if err != nil {
		tb.t.Fatalf("%s: read the messages: %v", tb.name, err)
	}
	return got
}

// wantLines checks that the page shows exactly want, in order.
func (tb *browserTab) wantLines(want ...chatLine) {
	tb.t.Helper()
	got := tb.lines()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		tb.t.Errorf("%s shows\n  %v\nwant\n  %v\n%s", tb.name, got, want, tb.dump())
	}
}

// member is an entry of the page's member list.
type member struct {
	ID, Name string
	Me       bool
}

// members returns the page's member list.
func (tb *browserTab) members() []member {
	tb.t.Helper()
	got, err := browserEval[[]member](tb, `Array.from(document.querySelectorAll("#member-list li")).map(function (m) {
		return {ID: m.dataset.clientId, Name: m.querySelector(".name").textContent, Me: m.classList.contains("me")};
	})`)
	if err != nil {
		tb.t.Fatalf("%s: read the member list: %v", tb.name, err)
	}
	return got
}

// waitMembers waits until the member list has exactly the given names (in
// any order) and a count that matches.
func (tb *browserTab) waitMembers(names ...string) {
	tb.t.Helper()
	tb.wait(fmt.Sprintf("members %q", names), fmt.Sprintf(`(function (want) {
		var got = Array.from(document.querySelectorAll("#member-list li .name")).map(function (n) { return n.textContent; });
		return document.getElementById("member-count").textContent === String(want.length) &&
			document.getElementById("members").dataset.stale === "false" &&
			JSON.stringify(got.slice().sort()) === JSON.stringify(want.slice().sort());
	})(%s)`, jsLit(names)))
}

// myClientID returns the page's own client id, from its member list.
func (tb *browserTab) myClientID() string {
	tb.t.Helper()
	tb.wait("its own entry in the member list", `document.querySelector("#member-list li.me") !== null`)
	id, err := browserEval[string](tb, `document.querySelector("#member-list li.me").dataset.clientId`)
	if err != nil || id == "" {
		tb.t.Fatalf("%s: own client id %q, %v", tb.name, id, err)
	}
	return id
}

// close closes the tab, as a user closing it does.
func (tb *browserTab) close() {
	tb.cancel()
}

// setOffline cuts the tab off the network, or puts it back: the browser
// says it is offline (navigator.onLine, the offline and online events) and
// its traffic stops, as when a laptop leaves the Wi-Fi.
func (tb *browserTab) setOffline(offline bool) {
	tb.t.Helper()
	tb.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		// Traffic first, so that nothing gets through once the page hears
		// it is offline. Chromium's protocol for it changed over versions:
		// try the deprecated command, then both shapes of its successor.
		type raw = cdp.Command[map[string]any, cdp.Empty]
		conds := map[string]any{"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
		err := cdpCall(ctx, t, raw{Method: "Network.emulateNetworkConditions"}, conds)
		if err != nil {
			rule := map[string]any{"urlPattern": "", "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
			err = cdpCall(ctx, t, raw{Method: "Network.emulateNetworkConditionsByRule"},
				map[string]any{"offline": offline, "matchedNetworkConditions": []any{rule}})
		}
		if err != nil {
			rule := map[string]any{"urlPattern": "", "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
			err = cdpCall(ctx, t, raw{Method: "Network.emulateNetworkConditionsByRule"},
				map[string]any{"matchedNetworkConditions": []any{rule}})
		}
		if err != nil {
			return fmt.Errorf("emulate offline=%v: %w", offline, err)
		}
		_, err = cdp.Call(ctx, t, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: offline, DownloadThroughput: -1, UploadThroughput: -1,
		})
		return err
	}))
	tb.wait(fmt.Sprintf("navigator.onLine to be %v", !offline), fmt.Sprintf("navigator.onLine === %v", !offline))
}

// cdpCall runs a raw DevTools command.
func cdpCall(ctx context.Context, t *chromedp.Target, c cdp.Command[map[string]any, cdp.Empty], params map[string]any) error {
	_, err := cdp.Call(ctx, t, c, params)
	return err
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
// chat.js): "room:" (the namespace "room", which the default configuration
// has) and the name's UTF-8 bytes, kept when in [A-Za-z0-9_-], else written
// as $hh.
func roomChannel(room string) string {
	var b strings.Builder
	b.WriteString("room:")
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
	if ch != "room:$e6$96$b0$e9$97$bb$20news" {
		t.Fatalf("roomChannel(%q) = %q", room, ch)
	}
	p.join("Ada", room)
	// The URL is quoted for the shell: it has '$'.
	if hint, err := browserEval[string](p, `document.getElementById("curl-hint").textContent`); err != nil || !strings.HasSuffix(hint, "/api/publish/"+ch+"'") {
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
	browserPost(t, s.URL+"/api/publish/"+roomChannel("other"), "text/plain", "not for news")

	browserPost(t, s.URL+"/api/broadcast", "application/json", `{"data":"maintenance"}`)
	p.waitNotice("maintenance")
	p.wait("the broadcast notice style", `document.querySelector("#messages .notice.broadcast") !== null`)

	if n, err := browserEval[int](p, `document.querySelectorAll("#messages .msg").length`); err != nil || n != 3 {
		t.Errorf("%d messages (err %v), want 3\n%s", n, err, p.dump())
	}
}

// TestBrowserReconnectsAfterServerRestart restarts the server under the
// page: the restart loses the history (a new epoch), so the page cannot
// recover what it missed. It must say so, reload the room's last messages,
// and carry on.
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
	// Kept offline until the new server has a message the page missed.
	p.setOffline(true)

	// A new server on the same address. startServer passes
	// --addr 127.0.0.1:0 first; the later flag wins.
	waitPortFree(t, addr)
	s2 := startServer(t, "--addr", addr)
	if s2.Addr != addr {
		t.Fatalf("restarted on %s, want %s", s2.Addr, addr)
	}
	ch := roomChannel("restart")
	browserPost(t, s2.URL+"/api/publish/"+ch, "text/plain", "while away")
	p.setOffline(false)
	p.waitState("connected")
	p.wait("the room subscription again", `document.getElementById("chat").dataset.joined === "true"`)
	p.waitNotice("Reconnected")
	p.waitNotice("Some messages could not be recovered")
	p.waitMessage("api", "while away")

	// Resubscribed: its own message and the API's both arrive.
	p.say("after")
	p.waitMessage("Ada", "after")
	browserPost(t, s2.URL+"/api/publish/"+ch, "text/plain", "api after")
	p.waitMessage("api", "api after")
	p.wantLines(
		chatLine{"Ada", "before", false},
		chatLine{"api", "while away", true},
		chatLine{"Ada", "after", false},
		chatLine{"api", "api after", false},
	)
	// The notice comes before the reloaded messages.
	if ok, err := browserEval[bool](p, `(function () {
		var n = document.querySelector("#messages .notice.reset");
		var m = document.querySelector("#messages .msg.earlier");
		return !!n && !!m && (n.compareDocumentPosition(m) & Node.DOCUMENT_POSITION_FOLLOWING) !== 0;
	})()`); err != nil || !ok {
		t.Errorf("the reset notice does not precede the reloaded messages (err %v)\n%s", err, p.dump())
	}
}

// TestBrowserRecoversMissedMessages takes a tab offline while the room goes
// on: once back, it shows what it missed, once each and in order.
func TestBrowserRecoversMissedMessages(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	a := newBrowserTab(t, browser, "tab A", s.URL+"/")
	b := newBrowserTab(t, browser, "tab B", s.URL+"/")
	a.join("Alice", "recovery")
	b.join("Bob", "recovery")
	a.say("a1")
	a.waitMessage("Alice", "a1")
	b.waitMessage("Alice", "a1")

	a.setOffline(true)
	a.waitState("disconnected")
	a.waitNotice("reconnecting")

	// Each waited for, so that the order is known.
	b.say("b1")
	b.waitMessage("Bob", "b1")
	b.say("b2")
	b.waitMessage("Bob", "b2")
	browserPost(t, s.URL+"/api/publish/"+roomChannel("recovery"), "text/plain", "api1")
	b.waitMessage("api", "api1")
	b.say("b3")
	b.waitMessage("Bob", "b3")
	a.wantLines(chatLine{"Alice", "a1", false}) // offline: nothing came

	a.setOffline(false)
	a.waitState("connected")
	a.waitNotice("Reconnected")
	a.waitMessage("Bob", "b3")
	// Live again. A duplicate of a recovered message would come before it.
	b.say("b4")
	a.waitMessage("Bob", "b4")
	b.waitMessage("Bob", "b4") // its own line comes back to it in its own time
	want := []chatLine{
		{"Alice", "a1", false},
		{"Bob", "b1", false},
		{"Bob", "b2", false},
		{"api", "api1", false},
		{"Bob", "b3", false},
		{"Bob", "b4", false},
	}
	a.wantLines(want...)
	b.wantLines(want...)
	if n, err := browserEval[int](a, `document.querySelectorAll("#messages .notice.reset").length`); err != nil || n != 0 {
		t.Errorf("tab A says %d times (err %v) that it could not recover\n%s", n, err, a.dump())
	}
}

// TestBrowserMemberList checks the room's member list: filled from presence
// on joining, with names learnt from chat lines, and kept up to date by
// join and leave, whether a tab leaves the room or closes.
func TestBrowserMemberList(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	a := newBrowserTab(t, browser, "tab A", s.URL+"/")
	b := newBrowserTab(t, browser, "tab B", s.URL+"/")
	c := newBrowserTab(t, browser, "tab C", s.URL+"/")

	a.join("Alice", "members")
	a.waitMembers("Alice")
	a.say("hello from A")
	a.waitMessage("Alice", "hello from A")

	// B learns Alice's name from the history; A sees B join, as a guest
	// until B says something.
	b.join("Bob", "members")
	b.waitMembers("Bob", "Alice")
	bID := b.myClientID()
	a.waitMembers("Alice", "guest-"+bID[:4])
	b.say("hi from B")
	a.waitMembers("Alice", "Bob")
	if m := a.members(); len(m) != 2 || !m[0].Me || m[0].Name != "Alice" || m[1].ID != bID {
		t.Errorf("tab A's member list %+v: want itself first, then B (%s)", m, bID)
	}
	if n, err := browserEval[string](a, `document.querySelector("#member-list li.me").textContent`); err != nil || !strings.Contains(n, "you") {
		t.Errorf("tab A's own entry %q (err %v) does not say it is you", n, err)
	}

	// C comes and leaves the room.
	c.join("Carol", "members")
	cID := c.myClientID()
	a.waitMembers("Alice", "Bob", "guest-"+cID[:4])
	b.waitMembers("Alice", "Bob", "guest-"+cID[:4])
	c.do(chromedp.Click(chromedp.ID("leave")), chromedp.WaitVisible(chromedp.ID("join-form")))
	a.waitMembers("Alice", "Bob")
	b.waitMembers("Alice", "Bob")

	// B closes its tab.
	b.close()
	a.waitMembers("Alice")
}

// TestBrowserHistoryOnJoin checks that a tab joining a room shows its last
// 50 messages, marked as earlier, then live ones.
func TestBrowserHistoryOnJoin(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	a := newBrowserTab(t, browser, "tab A", s.URL+"/")
	a.join("Alice", "history")
	ch := roomChannel("history")
	for i := 1; i <= 52; i++ {
		browserPost(t, s.URL+"/api/publish/"+ch, "text/plain", fmt.Sprintf("n%d", i))
	}
	a.waitMessage("api", "n52")
	a.say("last from A")
	a.waitMessage("Alice", "last from A")

	b := newBrowserTab(t, browser, "tab B", s.URL+"/")
	b.join("Bob", "history")
	b.waitMessage("Alice", "last from A")
	b.waitNotice("Earlier messages")
	b.say("live from B")
	b.waitMessage("Bob", "live from B")
	a.waitMessage("Bob", "live from B")

	var want []chatLine
	for i := 4; i <= 52; i++ { // the last 50: n4...n52 and A's
		want = append(want, chatLine{"api", fmt.Sprintf("n%d", i), true})
	}
	want = append(want, chatLine{"Alice", "last from A", true}, chatLine{"Bob", "live from B", false})
	b.wantLines(want...)
	// The earlier messages come after the welcome, then the divider.
	if order, err := browserEval[string](b, `Array.from(document.querySelectorAll("#messages > li")).map(function (li) {
		return li.classList.contains("earlier-divider") ? "divider" : li.classList.contains("earlier") ? "earlier" : li.classList.contains("notice") ? "notice" : "live";
	}).filter(function (k, i, all) { return i === 0 || all[i - 1] !== k; }).join(",")`); err != nil || order != "notice,earlier,divider,live" {
		t.Errorf("tab B's list runs %q (err %v), want notice,earlier,divider,live", order, err)
	}
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

// TestBrowserClientHistoryAPI uses wspush.js's history, presence and
// recovery API directly, in the default configuration's namespace "room".
func TestBrowserClientHistoryAPI(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	p := newBrowserTab(t, browser, "page", s.URL+"/")

	got, err := browserEval[map[string]any](p, `(async function () {
		const ch = "room:api";
		const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
		const until = async (f) => { while (!f()) await sleep(10); };
		const c = new Wspush();
		const subs = [], msgs = [], joins = [], leaves = [];
		c.on("subscribed", (e) => subs.push(e));
		c.on("message", (m) => msgs.push(m));
		c.on("join", (e) => joins.push(e));
		c.on("leave", (e) => leaves.push(e));
		c.connect();
		const reply = await c.subscribe(ch);
		const pub = [];
		for (let i = 1; i <= 3; i++) pub.push(await c.publish(ch, i));
		await until(() => msgs.length === 3 && joins.length === 1);
		const epoch = msgs[0].epoch;
		// The same message again is dropped.
		c._frame(JSON.stringify({type: "message", channel: ch, offset: 2, epoch: epoch, data: "dup"}));
		const h = await c.history(ch, {limit: 2});
		const hs = await c.history(ch, {since: {offset: 1, epoch: epoch}});
		const pres = await c.presence(ch);
		const presJoins = joins.length;
		const stats = await c.presenceStats(ch);
		let notSub = "";
		try { await c.history("room:elsewhere", {limit: 1}); } catch (e) { notSub = e.code; }
		let noHistory = "";
		try { await c.subscribe("plain"); await c.history("plain"); } catch (e) { noHistory = e.code; }

		// Resuming from a position: the messages after it, then live ones.
		const d = new Wspush();
		const dsubs = [], dmsgs = [], dresets = [];
		d.on("subscribed", (e) => dsubs.push(e));
		d.on("message", (m) => dmsgs.push(m));
		d.on("reset", (e) => dresets.push(e));
		d.connect();
		await d.subscribe(ch, {since: {offset: 1, epoch: epoch}});
		await until(() => dmsgs.length === 2);
		await until(() => joins.length === 2);
		await c.publish(ch, 4);
		await until(() => dmsgs.length === 3 && msgs.length === 4);

		// A position of another epoch cannot be recovered.
		const e = new Wspush();
		const esubs = [], eresets = [], emsgs = [];
		e.on("subscribed", (x) => esubs.push(x));
		e.on("reset", (x) => eresets.push(x));
		e.on("message", (m) => emsgs.push(m));
		e.connect();
		await e.subscribe(ch, {since: {offset: 1, epoch: "gone"}});
		const epos = e.position(ch);
		d.close();
		await until(() => leaves.length === 1);
		e.close();
		const cpos = c.position(ch);
		c.close();
		return {
			reply: [reply.offset, reply.epoch === "", reply.recovered === undefined],
			sub0: JSON.stringify(subs[0]),
			pub: pub.map((r) => r.offset).join(","),
			msgs: msgs.map((m) => m.offset + ":" + m.data + ":" + (m.epoch === epoch)).join(","),
			join: joins[0].client.client_id === pres.clients[0].client_id && joins[0].channel === ch,
			history: h.messages.map((m) => m.offset + ":" + m.data).join(",") + "@" + h.offset + ":" + (h.epoch === epoch),
			since: hs.messages.map((m) => m.offset).join(",") + ":" + hs.complete,
			presence: pres.clients.length + "/" + presJoins,
			stats: stats.num_clients + "/" + stats.num_users,
			notSub, noHistory,
			dsub: JSON.stringify(dsubs[0]).replace(epoch, "E"),
			dmsgs: dmsgs.map((m) => m.offset + ":" + m.data).join(","),
			dresets: dresets.length,
			leave: leaves[0].client.client_id === joins[1].client.client_id,
			esub: esubs[0].recovered + ":" + esubs[0].offset + ":" + (esubs[0].epoch === epoch),
			ereset: eresets.length === 1 ? eresets[0].since.epoch + ":" + eresets[0].offset : "none",
			emsgs: emsgs.length,
			epos: epos.offset + ":" + (epos.epoch === epoch),
			cpos: cpos.offset + ":" + (cpos.epoch === epoch),
			afterUnsub: (c.unsubscribe(ch), c.position(ch) === null),
		};
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"reply":      []any{float64(0), true, true}, // a new channel: offset 0, no epoch yet
		"sub0":       `{"channel":"room:api","recovered":null,"offset":0,"epoch":""}`,
		"pub":        "1,2,3",
		"msgs":       "1:1:true,2:2:true,3:3:true,4:4:true",
		"join":       true,
		"history":    "2:2,3:3@3:true",
		"since":      "2,3:true",
		"presence":   "1/1",
		"stats":      "1/0",
		"notSub":     "forbidden",
		"noHistory":  "not_found",
		"dsub":       `{"channel":"room:api","recovered":true,"offset":3,"epoch":"E"}`,
		"dmsgs":      "2:2,3:3,4:4",
		"dresets":    float64(0),
		"leave":      true,
		"esub":       "false:4:true",
		"ereset":     "gone:4",
		"emsgs":      float64(0),
		"epos":       "4:true",
		"cpos":       "4:true",
		"afterUnsub": true,
	}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestBrowserRoomWithoutHistory runs the chat with a config file whose
// namespace "room" has neither history nor presence (a config file's
// namespaces replace the built-in list): the chat works, without a member
// list, and says nothing is wrong.
func TestBrowserRoomWithoutHistory(t *testing.T) {
	s := startServer(t, "--config", writeConfig(t, "namespaces:\n  - name: room\n    client_publish: true\n"))
	browser := newBrowser(t)
	a := newBrowserTab(t, browser, "tab A", s.URL+"/")
	a.join("Alice", "plain")
	a.say("one")
	a.waitMessage("Alice", "one")
	b := newBrowserTab(t, browser, "tab B", s.URL+"/")
	b.join("Bob", "plain")
	b.wait("the member list to hide", `document.getElementById("members").hidden`)
	a.wait("the member list to hide", `document.getElementById("members").hidden`)
	b.say("two")
	a.waitMessage("Bob", "two")
	b.waitMessage("Bob", "two")
	a.wantLines(chatLine{"Alice", "one", false}, chatLine{"Bob", "two", false})
	b.wantLines(chatLine{"Bob", "two", false}) // no history to show
	for _, tb := range []*browserTab{a, b} {
		if n, err := browserEval[int](tb, `document.querySelectorAll("#messages .notice.error, #messages .notice.reset").length`); err != nil || n != 0 {
			t.Errorf("%s shows %d error notices (err %v)\n%s", tb.name, n, err, tb.dump())
		}
	}
}

// TestBrowserResubscribesPastTheRateLimit: after a reconnect, wspush.js
// subscribes again to every channel, more than the server's command burst
// lets through at once; the refused ones (rate_limited) are tried again
// instead of being dropped without a word, as they used to be. A channel
// refused for good is dropped, with an "unsubscribed" event.
func TestBrowserResubscribesPastTheRateLimit(t *testing.T) {
	s := startServer(t, "--client-rate-burst", "5", "--client-rate-limit", "100")
	browser := newBrowser(t)
	p := newBrowserTab(t, browser, "page", s.URL+"/")

	got, err := browserEval[map[string]any](p, `(async function () {
		const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
		const c = new Wspush(undefined, {minDelay: 50, maxDelay: 400});
		const welcome = new Promise((resolve) => c.on("welcome", resolve));
		c.connect();
		await welcome;
		// 7 channels and one to be refused: over the burst of 5, under
		// twice it (past that the server closes with 4008).
		const names = ["rs0", "rs1", "rs2", "rs3", "rs4", "rs5", "rs6", "refused"];
		for (const ch of names) {
			for (;;) { // the test's own pace for the first subscriptions
				try { await c.subscribe(ch); break; } catch (e) {
					if (e.code !== "rate_limited") throw e;
					await sleep(30);
				}
			}
		}
		// From now on the server refuses "refused" for good: its
		// resubscription names a channel the server rejects.
		const send = c._send.bind(c);
		c._send = (cmd, resolve, reject) =>
			send(cmd.channel === "refused" ? Object.assign({}, cmd, {channel: "bad channel!"}) : cmd, resolve, reject);
		await sleep(100); // the bucket refills: the resubscriptions below meet a full burst
		const again = new Set(), dropped = [];
		c.on("subscribed", (e) => again.add(e.channel));
		c.on("unsubscribed", (e) => dropped.push(e.channel + ":" + e.code));
		const welcomes = [];
		c.on("welcome", (w) => welcomes.push(w));
		c._ws.close(); // the connection drops; the client reconnects
		const t0 = Date.now();
		while ((again.size < 7 || c.channels.length !== 7 || dropped.length === 0) && Date.now() - t0 < 8000) await sleep(20);
		const result = {again: again.size, channels: c.channels.join(","), dropped: dropped.join(","), welcomes: welcomes.length};
		c.close();
		return result;
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"again": float64(7), "channels": "rs0,rs1,rs2,rs3,rs4,rs5,rs6", "dropped": "refused:bad_request", "welcomes": float64(1)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after the reconnect, %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// TestBrowserBacksOffWhenClosedAfterEachWelcome: a connection that ends
// right after its welcome (a server that closes with 4008 at once, say)
// does not reset the back-off, which grows with every try; one that stayed
// up for maxDelay does. wspush.js used to reset it at every welcome and
// reconnect every 25-50 ms here for ever.
func TestBrowserBacksOffWhenClosedAfterEachWelcome(t *testing.T) {
	s := startServer(t)
	browser := newBrowser(t)
	p := newBrowserTab(t, browser, "page", s.URL+"/")

	got, err := browserEval[map[string]any](p, `(async function () {
		const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
		const c = new Wspush(undefined, {minDelay: 50, maxDelay: 400});
		const delays = [];
		let cut = true, welcomes = 0;
		c.on("state", (e) => { if (e.state === "disconnected" && e.delay !== null) delays.push(e.delay); });
		c.on("welcome", () => { welcomes++; if (cut) c._ws.close(); });
		c.connect();
		const t0 = Date.now();
		while (delays.length < 4 && Date.now() - t0 < 8000) await sleep(10);
		const early = delays.slice(0, 4);
		// Now a connection that stays up for maxDelay, then drops.
		cut = false;
		const n = welcomes;
		while (welcomes === n && Date.now() - t0 < 8000) await sleep(10);
		await sleep(450); // the connection's age is what is under test
		c._ws.close();
		while (delays.length < 5 && Date.now() - t0 < 8000) await sleep(10);
		c.close();
		return {early: early.join(","), after: delays[4]};
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	var early []float64
	for f := range strings.SplitSeq(fmt.Sprint(got["early"]), ",") {
		var d float64
		fmt.Sscan(f, &d)
		early = append(early, d)
	}
	// Try n waits in [d/2, d], d = min(400, 50 * 2^n).
	bounds := [][2]float64{{25, 50}, {50, 100}, {100, 200}, {200, 400}}
	if len(early) != 4 {
		t.Fatalf("delays %v, want 4", got)
	}
	for i, b := range bounds {
		if early[i] < b[0] || early[i] > b[1] {
			t.Errorf("delay before try %d after a close at the welcome: %v ms, want %v-%v (all %v)", i, early[i], b[0], b[1], early)
		}
	}
	if after, ok := got["after"].(float64); !ok || after < 25 || after > 50 {
		t.Errorf("delay after a connection that stayed up for maxDelay: %v, want 25-50 ms", got["after"])
	}
}
