/*
 * wspush.js: the JavaScript client of wspush's native protocol v1.
 * No dependencies; served by every wspush node at /wspush.js.
 *
 * Load it as a classic script (it defines the global class Wspush):
 *
 *   <script src="/wspush.js"></script>
 *
 * or as an ES module, through the wrapper /wspush.mjs:
 *
 *   import { Wspush } from "/wspush.mjs";
 *
 * Use:
 *
 *   const ws = new Wspush();             // url: ws(s)://<this host>/ws
 *   ws.on("state", (e) => console.log(e.state));    // connecting|connected|disconnected
 *   ws.on("message", (m) => console.log(m.channel, m.data));
 *   ws.on("broadcast", (b) => console.log(b.data));
 *   ws.connect();
 *   await ws.subscribe("chat");
 *   await ws.publish("chat", {text: "hi"});
 *   await ws.unsubscribe("chat");
 *   ws.close();                          // closes with 1000; no reconnect
 *
 * new Wspush(url, options)
 *   url      "ws://host/ws", "/ws" (on this host) or omitted (this host's /ws).
 *   options  minDelay (500 ms), maxDelay (10000 ms): reconnect back-off bounds;
 *            timeout (10000 ms): how long a command waits for its reply.
 *
 * Methods
 *   connect()                 opens the connection (again after close()).
 *   close()                   closes with 1000 and stops reconnecting.
 *   subscribe(channel)        Promise, resolved by the server's reply.
 *   unsubscribe(channel)      Promise.
 *   publish(channel, data)    Promise; data is any JSON value.
 *   ping()                    Promise.
 *   on(type, fn)              calls fn(detail) for each event; returns a
 *                             function that removes fn.
 * Properties: state, clientId, channels (the channels wanted, an array).
 *
 * Events (Wspush is an EventTarget: each event is a CustomEvent, and on()
 * hands its detail to the callback)
 *   state      {state, code, reason, delay}: code and reason of the close
 *              for "disconnected", delay (ms) until the next try, or null
 *              when the client gives up (close(), or close code 4003).
 *   welcome    the server's welcome frame: {client_id, version, ping_interval, channels}.
 *   message    {channel, data}.
 *   broadcast  {data}.
 *   subscribed {channel}: the server confirmed a subscription, on subscribe()
 *              and on each resubscription after a reconnect.
 *
 * Replies: a command's Promise resolves with the reply frame when it is ok,
 * and rejects with an Error whose .code is the server's error code
 * ("forbidden", "bad_request", ...), or "disconnected" when the connection
 * drops before the reply, or "timeout".
 *
 * Reconnects: after every close except close() and 4003 (forbidden), the
 * client reconnects, and subscribes again to every channel it wants. Retry n
 * (from 0, reset by each welcome) waits a random time between d/2 and d,
 * where d = min(maxDelay, minDelay * 2^n). A channel
 * stays wanted from subscribe() until unsubscribe(), even if a reply was lost
 * to a disconnect; it is dropped when the server refuses it. publish() while
 * not connected rejects at once ("disconnected"); subscribe() waits for the
 * connection (so it may come before connect()), unless close() is called.
 */
(function (root) {
  "use strict";

  // CLOSE_FORBIDDEN is the close code after which retrying cannot help.
  var CLOSE_FORBIDDEN = 4003;

  function defaultURL() {
    var loc = root.location;
    return (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + "/ws";
  }

  function resolveURL(url) {
    if (!url) return defaultURL();
    if (url.charAt(0) === "/") {
      var loc = root.location;
      return (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + url;
    }
    return url;
  }

  function wspushError(code, message) {
    var err = new Error(message || code);
    err.code = code;
    return err;
  }

  class Wspush extends EventTarget {
    constructor(url, options) {
      super();
      options = options || {};
      this.url = resolveURL(url);
      this.minDelay = options.minDelay || 500;
      this.maxDelay = options.maxDelay || 10000;
      this.timeout = options.timeout || 10000;
      this.state = "disconnected";
      this.clientId = null;
      this._wanted = new Set(); // channels to (re)subscribe
      this._pending = new Map(); // id -> {resolve, reject, timer}
      this._waiting = []; // commands sent once connected: [cmd, resolve, reject]
      this._nextId = 1;
      this._attempt = 0;
      this._ws = null;
      this._retry = null; // reconnect timer
      this._watch = null; // liveness timer
      this._lastFrame = 0;
      this._stopped = true;
      this._onOnline = () => {
        if (!this._stopped && this.state === "disconnected") this._open();
      };
    }

    get channels() {
      return Array.from(this._wanted);
    }

    on(type, fn) {
      var listener = (ev) => fn(ev.detail);
      this.addEventListener(type, listener);
      return () => this.removeEventListener(type, listener);
    }

    connect() {
      if (!this._stopped) return;
      this._stopped = false;
      if (root.addEventListener) root.addEventListener("online", this._onOnline);
      this._open();
    }

    close() {
      if (this._stopped && !this._ws) return;
      this._stopped = true;
      clearTimeout(this._retry);
      if (root.removeEventListener) root.removeEventListener("online", this._onOnline);
      var ws = this._ws;
      if (ws) {
        this._ws = null;
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        ws.close(1000);
      }
      this._disconnected(1000, "closed by the client", null);
    }

    subscribe(channel) {
      this._wanted.add(channel);
      return this._command({ op: "subscribe", channel: channel }, true).then(
        (reply) => {
          this._emit("subscribed", { channel: channel });
          return reply;
        },
        (err) => {
          if (err.code !== "disconnected" && err.code !== "timeout") this._wanted.delete(channel);
          throw err;
        }
      );
    }

    unsubscribe(channel) {
      this._wanted.delete(channel);
      if (this.state !== "connected") return Promise.resolve({ ok: true });
      return this._command({ op: "unsubscribe", channel: channel }, false);
    }

    publish(channel, data) {
      return this._command({ op: "publish", channel: channel, data: data }, false);
    }

    ping() {
      return this._command({ op: "ping" }, false);
    }

    // _command sends cmd with a fresh id and resolves with its reply. When
    // not connected it rejects, or, if wait, sends once connected.
    _command(cmd, wait) {
      return new Promise((resolve, reject) => {
        if (this.state === "connected") {
          this._send(cmd, resolve, reject);
        } else if (wait) {
          this._waiting.push([cmd, resolve, reject]);
        } else {
          reject(wspushError("disconnected", "not connected"));
        }
      });
    }

    _send(cmd, resolve, reject) {
      var id = this._nextId++;
      var timer = setTimeout(() => {
        this._pending.delete(id);
        reject(wspushError("timeout", "no reply to " + cmd.op + " within " + this.timeout + " ms"));
      }, this.timeout);
      this._pending.set(id, { resolve: resolve, reject: reject, timer: timer });
      this._ws.send(JSON.stringify(Object.assign({ id: id }, cmd)));
    }

    _emit(type, detail) {
      this.dispatchEvent(new CustomEvent(type, { detail: detail }));
    }

    _setState(state, extra) {
      this.state = state;
      this._emit("state", Object.assign({ state: state, code: null, reason: "", delay: null }, extra));
    }

    _open() {
      clearTimeout(this._retry);
      this._setState("connecting");
      var ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        this._closed(1006, String(err));
        return;
      }
      this._ws = ws;
      ws.onmessage = (ev) => {
        this._lastFrame = Date.now();
        this._frame(ev.data);
      };
      ws.onclose = (ev) => {
        if (this._ws === ws) this._closed(ev.code, ev.reason);
      };
    }

    _frame(text) {
      var f;
      try {
        f = JSON.parse(text);
      } catch (err) {
        return; // not ours; the server sends only JSON objects
      }
      if (!f) return;
      switch (f.type) {
        case "welcome":
          this._welcome(f);
          break;
        case "reply":
          var id = f.id;
          if (id == null && this._pending.size > 0) {
            // Replies come in order, and every command here has an id: a
            // reply without one (the rate limiter answers before it reads
            // the command) belongs to the oldest command still waiting.
            id = this._pending.keys().next().value;
          }
          var p = this._pending.get(id);
          if (!p) return;
          this._pending.delete(id);
          clearTimeout(p.timer);
          if (f.ok) p.resolve(f);
          else p.reject(wspushError((f.error && f.error.code) || "internal", f.error && f.error.message));
          break;
        case "message":
          this._emit("message", { channel: f.channel, data: f.data });
          break;
        case "broadcast":
          this._emit("broadcast", { data: f.data });
          break;
      }
    }

    _welcome(f) {
      this._attempt = 0;
      this.clientId = f.client_id;
      this._watchLiveness((f.ping_interval || 0) * 1000);
      this._setState("connected");
      this._emit("welcome", f);
      var waiting = this._waiting;
      this._waiting = [];
      var queued = new Set();
      waiting.forEach((w) => {
        if (w[0].op === "subscribe") {
          if (!this._wanted.has(w[0].channel)) {
            w[2](wspushError("unsubscribed", "unsubscribed before the connection was made"));
            return;
          }
          queued.add(w[0].channel);
        }
        this._send(w[0], w[1], w[2]);
      });
      var already = new Set(f.channels || []);
      this._wanted.forEach((ch) => {
        if (queued.has(ch) || already.has(ch)) return;
        this._send(
          { op: "subscribe", channel: ch },
          () => this._emit("subscribed", { channel: ch }),
          (err) => {
            if (err.code !== "disconnected" && err.code !== "timeout") this._wanted.delete(ch);
          }
        );
      });
    }

    // _watchLiveness pings the server when it has been silent for an
    // interval, and drops a connection whose ping goes unanswered: a browser
    // sees no WebSocket ping, and a dead network (a laptop waking from
    // sleep) can leave a socket open for minutes.
    _watchLiveness(interval) {
      clearInterval(this._watch);
      if (!interval) return;
      var ws = this._ws;
      this._watch = setInterval(() => {
        if (Date.now() - this._lastFrame < interval) return;
        this.ping().catch((err) => {
          if (err.code !== "timeout" || this._ws !== ws) return;
          ws.onclose = null;
          ws.close();
          this._closed(1006, "no reply to ping");
        });
      }, interval);
    }

    _closed(code, reason) {
      this._ws = null;
      var retry = !this._stopped && code !== CLOSE_FORBIDDEN;
      if (!retry) this._stopped = true;
      var delay = null;
      if (retry) {
        // Exponential back-off with jitter: a random delay in [d/2, d].
        var d = Math.min(this.maxDelay, this.minDelay * Math.pow(2, this._attempt++));
        delay = Math.round(d / 2 + (Math.random() * d) / 2);
        this._retry = setTimeout(() => this._open(), delay);
      }
      this._disconnected(code, reason, delay);
    }

    _disconnected(code, reason, delay) {
      clearInterval(this._watch);
      var err = wspushError("disconnected", "connection closed (" + code + ")");
      this._pending.forEach((p) => {
        clearTimeout(p.timer);
        p.reject(err);
      });
      this._pending.clear();
      if (this._stopped) {
        this._waiting.forEach((w) => w[2](err));
        this._waiting = [];
      }
      this.clientId = null;
      this._setState("disconnected", { code: code, reason: reason, delay: delay });
    }
  }

  root.Wspush = Wspush;
})(typeof window !== "undefined" ? window : globalThis);
