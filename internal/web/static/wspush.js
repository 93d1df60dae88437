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
 *   ws.on("message", (m) => console.log(m.channel, m.data, m.offset));
 *   ws.on("broadcast", (b) => console.log(b.data));
 *   ws.on("subscribed", (s) => { if (s.recovered === false) reload(s.channel); });
 *   ws.connect();
 *   await ws.subscribe("chat:room1");
 *   await ws.publish("chat:room1", {text: "hi"});
 *   const h = await ws.history("chat:room1", {limit: 50});   // h.messages
 *   const p = await ws.presence("chat:room1");               // p.clients
 *   await ws.unsubscribe("chat:room1");
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
 *   subscribe(channel, opts)  Promise, resolved by the server's reply frame
 *                             ({ok, offset, epoch, recovered} for a channel
 *                             with history). opts.since = {offset, epoch}
 *                             resumes from a position the application kept
 *                             (e.g. across page loads): the missed messages
 *                             come first, as message events.
 *   unsubscribe(channel)      Promise; forgets the channel's position.
 *   publish(channel, data)    Promise; data is any JSON value. The reply has
 *                             the message's offset and epoch when the
 *                             channel keeps history.
 *   history(channel, opts)    Promise of {offset, epoch, messages: [{offset,
 *                             data}, ...]} (oldest first): the last opts.limit
 *                             messages, or with opts.since = {offset, epoch}
 *                             those after it (then also "complete": false
 *                             when some are gone). Needs a subscription, and
 *                             history on for the channel's namespace.
 *   presence(channel)         Promise of {clients: [{client_id, ...}, ...]}.
 *   presenceStats(channel)    Promise of {num_clients, num_users}. Both need a
 *                             subscription, and presence on for the namespace.
 *   position(channel)         the last {offset, epoch} seen on the channel, or
 *                             null (no history, or not subscribed).
 *   ping()                    Promise.
 *   on(type, fn)              calls fn(detail) for each event; returns a
 *                             function that removes fn.
 * history(), presence(), presenceStats(), publish() and ping() reject at
 * once ("disconnected") when not connected.
 * Properties: state, clientId, channels (the channels wanted, an array).
 *
 * Events (Wspush is an EventTarget: each event is a CustomEvent, and on()
 * hands its detail to the callback)
 *   state      {state, code, reason, delay}: code and reason of the close
 *              for "disconnected", delay (ms) until the next try, or null
 *              when the client gives up (close(), or close code 4003).
 *   welcome    the server's welcome frame: {client_id, version, ping_interval, channels}.
 *   message    {channel, data}, and {offset, epoch} in a channel with history.
 *   broadcast  {data}.
 *   subscribed {channel, recovered, offset, epoch}: the server confirmed a
 *              subscription, on subscribe() and on each resubscription after
 *              a reconnect; before any message of the subscription. offset
 *              and epoch are the channel's position (null without history).
 *              recovered is null when no position was sent (a first
 *              subscription), true when every message missed since the
 *              position follows, and false when some are lost (see reset).
 *   reset      {channel, offset, epoch, since}: a resubscription could not
 *              recover the messages after since (the server restarted and
 *              its history with it, or more were published than it keeps):
 *              reload the channel's state, e.g. with history(). Follows the
 *              subscribed event that has recovered: false.
 *   unsubscribed {channel, code, message}: a resubscription after a
 *              reconnect was refused for good (the server no longer allows
 *              the channel, for example), and the channel is no longer
 *              wanted. Refusals that may pass (rate_limited, unavailable,
 *              internal, timeout) are tried again, with the back-off below.
 *   join       {channel, client: {client_id, ...}}: a client subscribed, in
 *   leave      namespaces with join_leave on; a client gets its own join too.
 *
 * Replies: a command's Promise resolves with the reply frame when it is ok,
 * and rejects with an Error whose .code is the server's error code
 * ("forbidden", "bad_request", ...), or "disconnected" when the connection
 * drops before the reply, or "timeout".
 *
 * Reconnects: after every close except close() and 4003 (forbidden), the
 * client reconnects, and subscribes again to every channel it wants. Retry n
 * (from 0, reset when a connection ends after staying up for maxDelay, or
 * when the browser comes back online) waits a random time between d/2 and
 * d, where d = min(maxDelay, minDelay * 2^n): a server that closes every
 * connection right after the welcome is not met with a reconnect storm. A channel
 * stays wanted from subscribe() until unsubscribe(), even if a reply was lost
 * to a disconnect; it is dropped when the server refuses it for good. publish() while
 * not connected rejects at once ("disconnected"); subscribe() waits for the
 * connection (so it may come before connect()), unless close() is called.
 * When the browser reports that it went offline, the client drops the
 * connection (it is dead, or about to be) and retries as usual; when it
 * reports that it is online again, the client reconnects at once, or, if
 * connected, checks the connection with a ping.
 *
 * Recovery: in channels with history, every message carries an offset
 * (1, 2, 3... per channel) and an epoch. The client keeps the last position
 * of each channel (from messages and subscribe replies) and resubscribes with
 * it after a reconnect, so the server sends the messages missed meanwhile,
 * in order, before the live ones: nothing lost, nothing twice. A message at
 * or before the kept position of the same epoch is dropped, should one come
 * twice.
 */
(function (root) {
  "use strict";

  // CLOSE_FORBIDDEN is the close code after which retrying cannot help.
  var CLOSE_FORBIDDEN = 4003;
  // Error codes of a refused resubscription that may pass if tried again.
  var RETRY_CODES = new Set(["rate_limited", "unavailable", "internal", "timeout"]);

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

  // positionOf returns the {offset, epoch} of a frame, or null when it has
  // none (a channel without history).
  function positionOf(f) {
    if (typeof f.offset !== "number" || typeof f.epoch !== "string") return null;
    return { offset: f.offset, epoch: f.epoch };
  }

  // validPosition reports whether p looks like {offset, epoch}.
  function validPosition(p) {
    return !!p && typeof p.offset === "number" && p.offset >= 0 && typeof p.epoch === "string";
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
      this._positions = new Map(); // channel -> {offset, epoch}: the last seen
      this._pending = new Map(); // id -> {cmd, resolve, reject, timer}
      this._waiting = []; // commands sent once connected: [cmd, resolve, reject]
      this._nextId = 1;
      this._attempt = 0;
      this._upSince = 0; // when the connection's welcome came; 0 while there is none
      this._ws = null;
      this._retry = null; // reconnect timer
      this._watch = null; // liveness timer
      this._lastFrame = 0;
      this._stopped = true;
      this._onOnline = () => {
        if (this._stopped) return;
        this._attempt = 0; // a new network: start the back-off again
        if (this.state === "disconnected") this._open();
        else if (this.state === "connected") this._check(this._ws);
      };
      this._onOffline = () => {
        if (!this._stopped && this._ws) this._drop(this._ws, "offline");
      };
    }

    get channels() {
      return Array.from(this._wanted);
    }

    position(channel) {
      var p = this._positions.get(channel);
      return p ? { offset: p.offset, epoch: p.epoch } : null;
    }

    on(type, fn) {
      var listener = (ev) => fn(ev.detail);
      this.addEventListener(type, listener);
      return () => this.removeEventListener(type, listener);
    }

    connect() {
      if (!this._stopped) return;
      this._stopped = false;
      this._attempt = 0;
      if (root.addEventListener) {
        root.addEventListener("online", this._onOnline);
        root.addEventListener("offline", this._onOffline);
      }
      this._open();
    }

    close() {
      if (this._stopped && !this._ws) return;
      this._stopped = true;
      clearTimeout(this._retry);
      if (root.removeEventListener) {
        root.removeEventListener("online", this._onOnline);
        root.removeEventListener("offline", this._onOffline);
      }
      var ws = this._ws;
      if (ws) {
        this._ws = null;
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        ws.close(1000);
      }
      this._disconnected(1000, "closed by the client", null);
    }

    subscribe(channel, options) {
      var since = options && options.since;
      if (since != null && !validPosition(since)) {
        return Promise.reject(wspushError("bad_request", "since must be {offset, epoch}"));
      }
      this._wanted.add(channel);
      if (since) this._positions.set(channel, { offset: since.offset, epoch: since.epoch });
      // The position, if any, is added when the command is sent.
      return this._command({ op: "subscribe", channel: channel }, true).catch((err) => {
        if (err.code !== "disconnected" && err.code !== "timeout") this._forget(channel);
        throw err;
      });
    }

    unsubscribe(channel) {
      this._forget(channel);
      if (this.state !== "connected") return Promise.resolve({ ok: true });
      return this._command({ op: "unsubscribe", channel: channel }, false);
    }

    publish(channel, data) {
      return this._command({ op: "publish", channel: channel, data: data }, false);
    }

    history(channel, options) {
      options = options || {};
      var cmd = { op: "history", channel: channel };
      if (options.limit != null) cmd.limit = options.limit;
      if (options.since != null) {
        if (!validPosition(options.since)) {
          return Promise.reject(wspushError("bad_request", "since must be {offset, epoch}"));
        }
        cmd.since = { offset: options.since.offset, epoch: options.since.epoch };
      }
      return this._command(cmd, false);
    }

    presence(channel) {
      return this._command({ op: "presence", channel: channel }, false);
    }

    presenceStats(channel) {
      return this._command({ op: "presence_stats", channel: channel }, false);
    }

    ping() {
      return this._command({ op: "ping" }, false);
    }

    _forget(channel) {
      this._wanted.delete(channel);
      this._positions.delete(channel);
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
      if (cmd.op === "subscribe") {
        // Resume from the last position seen, as of now: on a
        // resubscription after a reconnect, the server then sends what
        // was missed.
        var pos = this._positions.get(cmd.channel);
        cmd = { op: "subscribe", channel: cmd.channel };
        if (pos) cmd.since = { offset: pos.offset, epoch: pos.epoch };
      }
      var id = this._nextId++;
      var timer = setTimeout(() => {
        this._pending.delete(id);
        reject(wspushError("timeout", "no reply to " + cmd.op + " within " + this.timeout + " ms"));
      }, this.timeout);
      this._pending.set(id, { cmd: cmd, resolve: resolve, reject: reject, timer: timer });
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
          this._reply(f);
          break;
        case "message":
          this._message(f);
          break;
        case "broadcast":
          this._emit("broadcast", { data: f.data });
          break;
        case "join":
        case "leave":
          this._emit(f.type, { channel: f.channel, client: f.client });
          break;
      }
    }

    _reply(f) {
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
      if (!f.ok) {
        p.reject(wspushError((f.error && f.error.code) || "internal", f.error && f.error.message));
        return;
      }
      // Handled here, not when the Promise settles: the messages of the
      // subscription follow in the very next frames.
      if (p.cmd.op === "subscribe") this._subscribed(p.cmd, f);
      p.resolve(f);
    }

    // _subscribed records a subscription's position and tells about it.
    _subscribed(cmd, f) {
      var ch = cmd.channel;
      var pos = positionOf(f);
      var recovered = cmd.since && typeof f.recovered === "boolean" ? f.recovered : null;
      if (pos && this._wanted.has(ch) && recovered !== true) {
        // A first subscription, or a lost gap: carry on from the top. When
        // recovered, the missed messages follow and move the position.
        this._positions.set(ch, pos);
      }
      this._emit("subscribed", {
        channel: ch,
        recovered: recovered,
        offset: pos ? pos.offset : null,
        epoch: pos ? pos.epoch : null,
      });
      if (recovered === false) {
        this._emit("reset", {
          channel: ch,
          offset: pos ? pos.offset : null,
          epoch: pos ? pos.epoch : null,
          since: cmd.since,
        });
      }
    }

    _message(f) {
      var detail = { channel: f.channel, data: f.data };
      var pos = positionOf(f);
      if (pos) {
        var last = this._positions.get(f.channel);
        if (last && last.epoch === pos.epoch && pos.offset <= last.offset) return; // seen already
        if (this._wanted.has(f.channel)) this._positions.set(f.channel, pos);
        detail.offset = pos.offset;
        detail.epoch = pos.epoch;
      }
      this._emit("message", detail);
    }

    _welcome(f) {
      this._upSince = Date.now();
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
        this._resubscribe(ch, 0);
      });
    }

    // _resubscribe subscribes again to a channel wanted, after a reconnect.
    // A refusal that may pass (rate_limited: a client with many channels
    // exceeds the command burst here; unavailable, internal, timeout) is
    // tried again after a growing delay, on the same connection; a final
    // one drops the channel and emits "unsubscribed".
    _resubscribe(ch, attempt) {
      var ws = this._ws;
      this._send(
        { op: "subscribe", channel: ch },
        () => {},
        (err) => {
          if (err.code === "disconnected" || !this._wanted.has(ch)) return; // the next welcome, or nothing
          if (RETRY_CODES.has(err.code)) {
            setTimeout(() => {
              if (this._ws === ws && this.state === "connected" && this._wanted.has(ch)) this._resubscribe(ch, attempt + 1);
            }, this._backoff(attempt));
            return;
          }
          this._forget(ch);
          this._emit("unsubscribed", { channel: ch, code: err.code, message: err.message });
        }
      );
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
        this._check(ws);
      }, interval);
    }

    // _check pings, and drops ws if the ping goes unanswered.
    _check(ws) {
      this.ping().catch((err) => {
        if (err.code === "timeout" && this._ws === ws) this._drop(ws, "no reply to ping");
      });
    }

    // _drop gives up on a connection that is dead or about to be, and
    // retries as after any lost connection.
    _drop(ws, reason) {
      ws.onmessage = ws.onclose = null;
      ws.close();
      this._closed(1006, reason);
    }

    _closed(code, reason) {
      this._ws = null;
      if (this._upSince && Date.now() - this._upSince >= this.maxDelay) this._attempt = 0;
      this._upSince = 0;
      var retry = !this._stopped && code !== CLOSE_FORBIDDEN;
      if (!retry) this._stopped = true;
      var delay = null;
      if (retry) {
        delay = this._backoff(this._attempt++);
        this._retry = setTimeout(() => this._open(), delay);
      }
      this._disconnected(code, reason, delay);
    }

    // _backoff is the delay (ms) before try n, counted from 0: exponential,
    // with jitter, a random delay in [d/2, d] where
    // d = min(maxDelay, minDelay * 2^n).
    _backoff(n) {
      var d = Math.min(this.maxDelay, this.minDelay * Math.pow(2, n));
      return Math.round(d / 2 + (Math.random() * d) / 2);
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
