// chat.js: the group chat (群聊天室) page, on top of wspush.js.
//
// A room is a channel of the namespace "room" ("room:" and the room name,
// see channelFor), where browsers may publish and the server keeps history,
// presence and join/leave (the default configuration of wspush serve has
// such a namespace). The browser publishes
// {"user": name, "text": text, "client_id": its client id, "ts": ms since
// 1970}; anything else pushed to the channel (for example a plain string
// from POST /api/publish/<channel>) shows as sent by "api", and broadcasts
// show as notices. Text goes into the page with textContent only, never as
// HTML.
//
// On joining a room the page shows the room's last messages (class
// "earlier"), and who is in the room (#members: the presence list, kept up
// to date by join and leave pushes; names are learnt from the client_id of
// chat lines, others show as guest-xxxx). After a reconnect, wspush.js
// recovers the messages missed meanwhile; when it cannot (the server
// restarted, or too much was published meanwhile), the page says so and
// reloads the last messages. #chat's data-joined is "true" while the server
// has confirmed the room's subscription.
(function () {
  "use strict";

  var MAX_MESSAGES = 500; // older messages leave the list
  var HISTORY_LIMIT = 50; // messages shown on joining a room
  var KEY_NAME = "wspush.chat.name";
  var KEY_ROOM = "wspush.chat.room";

  function $(id) {
    return document.getElementById(id);
  }
  var els = {
    state: $("state"),
    joinForm: $("join-form"),
    name: $("name"),
    room: $("room"),
    joinError: $("join-error"),
    chat: $("chat"),
    roomTitle: $("room-title"),
    leave: $("leave"),
    messages: $("messages"),
    members: $("members"),
    memberCount: $("member-count"),
    memberList: $("member-list"),
    composer: $("composer"),
    input: $("input"),
    send: $("send"),
    hint: $("curl-hint"),
  };

  var client = null;
  var me = "";
  // room is the room joined, or null:
  //   name, channel
  //   shown    "epoch/offset" of every message shown, so none shows twice
  //   loaded   whether its last messages were loaded from the history
  //   cursor   where the loaded messages go: after this element
  //   members  client id -> client, from presence and join/leave; null
  //            until the presence list came
  //   events   join/leave pushes that came while the presence list was
  //            on its way, applied on top of it; null otherwise
  var room = null;
  var names = new Map(); // client id -> name, learnt from chat lines
  var hintText = els.hint.textContent;
  var lost = false; // the connection dropped and has not come back yet

  var STATE_TITLES = {
    connecting: "正在连接… connecting…",
    connected: "已连接 connected",
    disconnected: "未连接 not connected",
  };

  function load(key) {
    try {
      return localStorage.getItem(key) || "";
    } catch (e) {
      return "";
    }
  }

  function store(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch (e) {
      // private mode: nothing to remember
    }
  }

  // channelFor maps a room name to a channel name: "room:" and the name's
  // UTF-8 bytes, kept when in [A-Za-z0-9_-] and written as $hh otherwise.
  // The channel is in the namespace "room" (the part before the first
  // ':'), and two rooms never share a channel.
  function channelFor(name) {
    var out = "room:";
    new TextEncoder().encode(name).forEach(function (b) {
      var c = String.fromCharCode(b);
      out += /[A-Za-z0-9_-]/.test(c) ? c : "$" + (b < 16 ? "0" : "") + b.toString(16);
    });
    return out;
  }

  function wsURL() {
    // Relative to the page, so that the chat works behind a path prefix.
    var u = new URL("ws", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    return u.href;
  }

  // shellWord quotes s for a POSIX shell when it needs it ($ in a channel).
  function shellWord(s) {
    return /^[A-Za-z0-9_\-.:\/@=,%]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
  }

  function showState(state, detail) {
    els.state.textContent = state;
    els.state.dataset.state = state;
    var title = STATE_TITLES[state];
    if (state === "disconnected" && detail && detail.delay != null) {
      title += " · " + Math.ceil(detail.delay / 1000) + " 秒后重连 reconnecting in " + Math.ceil(detail.delay / 1000) + "s";
    }
    els.state.title = title;
    els.send.disabled = state !== "connected";
  }

  // sentAt returns the time a chat line says it was sent, or null.
  function sentAt(data) {
    var ts = data && typeof data === "object" ? data.ts : null;
    if (typeof ts !== "number" || !isFinite(ts) || ts <= 0 || ts > Date.now() + 864e5) return null;
    return new Date(ts);
  }

  // timeElement shows when: a Date, or null for an earlier message that
  // does not say when it was sent.
  function timeElement(when) {
    var t = document.createElement("time");
    t.className = "time";
    if (!when) {
      t.textContent = "较早 earlier";
      return t;
    }
    t.dateTime = when.toISOString();
    var opts = { hour: "2-digit", minute: "2-digit", second: "2-digit" };
    if (when.toDateString() !== new Date().toDateString()) {
      opts.month = "2-digit";
      opts.day = "2-digit";
    }
    t.textContent = when.toLocaleString([], opts);
    return t;
  }

  function atBottom() {
    var list = els.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }

  function trim(stick) {
    var list = els.messages;
    while (list.children.length > MAX_MESSAGES) list.removeChild(list.firstChild);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function append(li) {
    var stick = atBottom();
    els.messages.appendChild(li);
    trim(stick);
    return li;
  }

  // insertAfter puts li after cursor (at the top if cursor left the list)
  // and returns li, the next cursor.
  function insertAfter(cursor, li) {
    var stick = atBottom();
    if (cursor && cursor.parentNode === els.messages) cursor.after(li);
    else els.messages.prepend(li);
    trim(stick);
    return li;
  }

  function asText(data) {
    return typeof data === "string" ? data : JSON.stringify(data);
  }

  // messageElement renders a message of the room: a chat line {user, text}
  // from a browser, or any other JSON value, as sent by "api". earlier
  // marks one loaded from the history.
  function messageElement(data, earlier) {
    var user = "api";
    var text;
    var cls = "msg";
    if (data && typeof data === "object" && typeof data.text === "string") {
      if (typeof data.user === "string" && data.user.trim()) user = data.user;
      text = data.text;
      if (user === me) cls += " mine";
      else if (user === "api") cls += " api";
    } else {
      text = asText(data);
      cls += " api";
    }
    if (earlier) cls += " earlier";
    var li = document.createElement("li");
    li.className = cls;
    var meta = document.createElement("div");
    meta.className = "meta";
    var u = document.createElement("span");
    u.className = "user";
    u.textContent = user;
    meta.append(u, " ", timeElement(sentAt(data) || (earlier ? null : new Date())));
    var body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    li.append(meta, body);
    return li;
  }

  function noticeElement(text, extraClass) {
    var li = document.createElement("li");
    li.className = "notice" + (extraClass ? " " + extraClass : "");
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    li.append(timeElement(new Date()), " ", body);
    return li;
  }

  function addNotice(text, extraClass) {
    return append(noticeElement(text, extraClass));
  }

  // learn remembers the name of a chat line's sender.
  function learn(data) {
    if (!data || typeof data !== "object" || typeof data.client_id !== "string" || typeof data.user !== "string") return false;
    var name = data.user.trim().slice(0, 32);
    if (!name || names.get(data.client_id) === name) return false;
    names.set(data.client_id, name);
    return !!(room && room.members && room.members.has(data.client_id));
  }

  // shownBefore records a message of r as shown, and reports whether it
  // was already. Messages without an offset (no history) always show.
  function shownBefore(r, epoch, offset) {
    if (typeof offset !== "number") return false;
    var key = epoch + "/" + offset;
    if (r.shown.has(key)) return true;
    r.shown.add(key);
    return false;
  }

  // loadHistory shows the room's last messages after cursor, except those
  // shown already and those after the subscription's position sub (they
  // come live).
  function loadHistory(r, sub, cursor, reloading) {
    client.history(r.channel, { limit: HISTORY_LIMIT }).then(
      function (h) {
        if (r !== room) return;
        r.loaded = true;
        var sameStream = sub.offset != null && (sub.epoch === h.epoch || sub.epoch === "");
        var n = 0;
        var named = false;
        (h.messages || []).forEach(function (m) {
          if (sameStream && m.offset > sub.offset) return;
          if (shownBefore(r, h.epoch, m.offset)) return;
          named = learn(m.data) || named;
          cursor = insertAfter(cursor, messageElement(m.data, true));
          n++;
        });
        if (n > 0 && !reloading) insertAfter(cursor, noticeElement("以上是较早的消息 Earlier messages above", "earlier-divider"));
        if (named) renderMembers();
      },
      function (err) {
        if (r !== room) return;
        if (err.code === "not_found") {
          r.loaded = true; // no history in this namespace
        } else if (err.code !== "disconnected") {
          // On a disconnect, the next subscription tries again.
          addNotice("无法载入历史消息 Cannot load earlier messages: " + err.message, "error");
        }
      }
    );
  }

  // loadMembers fetches who is in the room; join and leave pushes that
  // come meanwhile are applied on top.
  function loadMembers(r) {
    var events = [];
    r.events = events;
    client.presence(r.channel).then(
      function (p) {
        if (r !== room || r.events !== events) return;
        r.members = new Map();
        (p.clients || []).forEach(function (c) {
          if (c && c.client_id) r.members.set(c.client_id, c);
        });
        r.events = null;
        events.forEach(function (ev) {
          applyMember(r, ev);
        });
        els.members.hidden = false;
        renderMembers();
      },
      function (err) {
        if (r !== room || r.events !== events) return;
        r.events = null;
        if (err.code === "not_found") els.members.hidden = true; // presence is off
      }
    );
  }

  function applyMember(r, ev) {
    if (ev.type === "join") r.members.set(ev.client.client_id, ev.client);
    else r.members.delete(ev.client.client_id);
  }

  function onMember(type, e) {
    var r = room;
    if (!r || e.channel !== r.channel || !e.client || !e.client.client_id) return;
    var ev = { type: type, client: e.client };
    if (r.events) {
      r.events.push(ev);
    } else if (r.members) {
      applyMember(r, ev);
      renderMembers();
    }
  }

  function memberName(id) {
    return names.get(id) || "guest-" + id.slice(0, 4);
  }

  function renderMembers() {
    var r = room;
    var list = els.memberList;
    list.textContent = "";
    var ids = r && r.members ? Array.from(r.members.keys()) : [];
    var mine = client && client.clientId;
    var entries = ids.map(function (id) {
      return { id: id, me: id === mine, name: id === mine ? me : memberName(id) };
    });
    entries.sort(function (a, b) {
      return b.me - a.me || a.name.localeCompare(b.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
    entries.forEach(function (e) {
      var li = document.createElement("li");
      li.className = "member" + (e.me ? " me" : names.has(e.id) ? "" : " guest");
      li.dataset.clientId = e.id;
      li.title = e.id;
      var n = document.createElement("span");
      n.className = "name";
      n.textContent = e.name;
      li.append(n);
      if (e.me) {
        var y = document.createElement("span");
        y.className = "you";
        y.textContent = " (你 you)";
        li.append(y);
      }
      list.append(li);
    });
    els.memberCount.textContent = String(entries.length);
    els.members.dataset.stale = client && client.state === "connected" && r && r.members ? "false" : "true";
  }

  function ensureClient() {
    if (client) return client;
    client = new Wspush(wsURL());
    client.on("state", function (e) {
      showState(e.state, e);
      if (e.state !== "connected") {
        els.chat.dataset.joined = "false";
        els.members.dataset.stale = "true";
      }
      if (e.state === "connected") {
        if (lost && room) addNotice("已重新连接 Reconnected.");
        lost = false;
      } else if (e.state === "disconnected" && room && !lost) {
        // Once per outage, not once per failed retry.
        lost = true;
        if (e.delay == null) {
          addNotice("连接已关闭 Connection closed (" + e.code + ").", "error");
        } else {
          addNotice("连接已断开，正在重连… Connection lost, reconnecting…", "error");
        }
      }
    });
    client.on("subscribed", function (e) {
      var r = room;
      if (!r || e.channel !== r.channel) return;
      els.chat.dataset.joined = "true";
      if (e.recovered === false && r.loaded) {
        var n = addNotice("部分消息未能恢复，已重新载入最近的消息。Some messages could not be recovered; reloaded the latest ones.", "reset");
        loadHistory(r, e, n, true);
      } else if (!r.loaded) {
        loadHistory(r, e, r.cursor, false);
      }
      loadMembers(r);
    });
    client.on("message", function (m) {
      var r = room;
      if (!r || m.channel !== r.channel) return;
      if (shownBefore(r, m.epoch, m.offset)) return;
      var named = learn(m.data);
      append(messageElement(m.data, false));
      if (named) renderMembers();
    });
    client.on("join", function (e) {
      onMember("join", e);
    });
    client.on("leave", function (e) {
      onMember("leave", e);
    });
    client.on("broadcast", function (b) {
      addNotice("广播 Broadcast: " + asText(b.data), "broadcast");
    });
    client.connect();
    return client;
  }

  function join(name, roomName) {
    name = name.trim();
    roomName = roomName.trim();
    var ch = channelFor(roomName);
    var problem = !name ? "请输入名字 Please enter a name." : !roomName ? "请输入房间 Please enter a room." : ch.length > 255 ? "房间名太长 The room name is too long." : "";
    els.joinError.textContent = problem;
    els.joinError.hidden = !problem;
    if (problem) return;

    store(KEY_NAME, name);
    store(KEY_ROOM, roomName);
    me = name;
    els.chat.dataset.joined = "false";
    els.messages.textContent = "";
    els.roomTitle.textContent = "# " + roomName;
    els.hint.textContent = "curl -d hello " + shellWord(new URL("api/publish/" + ch, location.href).href);
    els.joinForm.hidden = true;
    els.chat.hidden = false;
    els.leave.hidden = false;
    var welcome = addNotice("欢迎 " + name + "，你已进入房间「" + roomName + "」。Welcome, " + name + "! You are in room “" + roomName + "”.");
    var r = { name: roomName, channel: ch, shown: new Set(), loaded: false, cursor: welcome, members: null, events: null };
    room = r;
    els.members.hidden = false;
    renderMembers();

    ensureClient()
      .subscribe(ch)
      .catch(function (err) {
        if (r !== room) return;
        var why = err.message;
        if (err.code === "not_found") why += " (服务器需要命名空间 room; the server needs a namespace \"room\", see docs/config.md)";
        addNotice("无法进入房间 Cannot join: " + why, "error");
      });
    els.input.focus();
  }

  function leave() {
    if (client && room) client.unsubscribe(room.channel).catch(function () {});
    room = null;
    renderMembers();
    els.chat.hidden = true;
    els.leave.hidden = true;
    els.roomTitle.textContent = "";
    els.hint.textContent = hintText;
    els.joinForm.hidden = false;
    els.room.focus();
  }

  function send() {
    var text = els.input.value.trim();
    if (!text || !client || client.state !== "connected" || !room) return;
    els.input.value = "";
    client.publish(room.channel, { user: me, text: text, client_id: client.clientId, ts: Date.now() }).catch(function (err) {
      addNotice("发送失败 Not sent: " + err.message, "error");
      if (!els.input.value) els.input.value = text;
    });
  }

  els.joinForm.addEventListener("submit", function (e) {
    e.preventDefault();
    join(els.name.value, els.room.value);
  });
  els.leave.addEventListener("click", leave);
  els.composer.addEventListener("submit", function (e) {
    e.preventDefault();
    send();
    els.input.focus();
  });
  els.input.addEventListener("keydown", function (e) {
    // Enter sends, Shift+Enter is a new line; Enter that ends an IME
    // composition (pinyin) only ends the composition.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    }
  });

  var query = new URLSearchParams(location.search);
  els.name.value = load(KEY_NAME);
  els.room.value = query.get("room") || load(KEY_ROOM) || "lobby";
  showState("disconnected");
  (els.name.value ? els.room : els.name).focus();
})();
