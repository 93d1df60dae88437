// chat.js: the group chat (群聊天室) page, on top of wspush.js.
//
// A room is a channel in the default namespace ("room-" and the room name,
// see channelFor), where browsers may publish. The browser publishes
// {"user": name, "text": text}; anything else pushed to the channel (for
// example a plain string from POST /api/publish/<channel>) shows as sent by
// "api", and broadcasts show as notices. Text goes into the page with
// textContent only, never as HTML. #chat's data-joined is "true" while the
// server has confirmed the room's subscription.
(function () {
  "use strict";

  var MAX_MESSAGES = 500; // older messages leave the list
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
    composer: $("composer"),
    input: $("input"),
    send: $("send"),
    hint: $("curl-hint"),
  };

  var client = null;
  var me = "";
  var channel = ""; // the room's channel; "" when in no room
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

  // channelFor maps a room name to a channel name: "room-" and the name's
  // UTF-8 bytes, kept when in [A-Za-z0-9_-] and written as $hh otherwise.
  // The result has no ':', so it is in the default namespace, and two rooms
  // never share a channel.
  function channelFor(room) {
    var out = "room-";
    new TextEncoder().encode(room).forEach(function (b) {
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

  function timeElement() {
    var now = new Date();
    var t = document.createElement("time");
    t.className = "time";
    t.dateTime = now.toISOString();
    t.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return t;
  }

  function append(li) {
    var list = els.messages;
    var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.appendChild(li);
    while (list.children.length > MAX_MESSAGES) list.removeChild(list.firstChild);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function addMessage(user, text, extraClass) {
    var li = document.createElement("li");
    li.className = "msg" + (extraClass ? " " + extraClass : "");
    var meta = document.createElement("div");
    meta.className = "meta";
    var u = document.createElement("span");
    u.className = "user";
    u.textContent = user;
    meta.append(u, " ", timeElement());
    var body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    li.append(meta, body);
    append(li);
  }

  function addNotice(text, extraClass) {
    var li = document.createElement("li");
    li.className = "notice" + (extraClass ? " " + extraClass : "");
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    li.append(timeElement(), " ", body);
    append(li);
  }

  function asText(data) {
    return typeof data === "string" ? data : JSON.stringify(data);
  }

  // show displays a message of the room: a chat line {user, text} from a
  // browser, or any other JSON value, as sent by "api".
  function show(data) {
    if (data && typeof data === "object" && typeof data.text === "string") {
      var user = typeof data.user === "string" && data.user.trim() ? data.user : "api";
      addMessage(user, data.text, user === me ? "mine" : "");
      return;
    }
    addMessage("api", asText(data), "api");
  }

  function ensureClient() {
    if (client) return client;
    client = new Wspush(wsURL());
    client.on("state", function (e) {
      showState(e.state, e);
      if (e.state !== "connected") els.chat.dataset.joined = "false";
      if (e.state === "connected") {
        if (lost && channel) addNotice("已重新连接 Reconnected.");
        lost = false;
      } else if (e.state === "disconnected" && channel && !lost) {
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
      if (e.channel === channel) els.chat.dataset.joined = "true";
    });
    client.on("message", function (m) {
      if (m.channel === channel) show(m.data);
    });
    client.on("broadcast", function (b) {
      addNotice("广播 Broadcast: " + asText(b.data), "broadcast");
    });
    client.connect();
    return client;
  }

  function join(name, room) {
    name = name.trim();
    room = room.trim();
    var ch = channelFor(room);
    var problem = !name ? "请输入名字 Please enter a name." : !room ? "请输入房间 Please enter a room." : ch.length > 255 ? "房间名太长 The room name is too long." : "";
    els.joinError.textContent = problem;
    els.joinError.hidden = !problem;
    if (problem) return;

    store(KEY_NAME, name);
    store(KEY_ROOM, room);
    me = name;
    channel = ch;
    els.chat.dataset.joined = "false";
    els.messages.textContent = "";
    els.roomTitle.textContent = "# " + room;
    els.hint.textContent = "curl -d hello " + new URL("api/publish/" + ch, location.href).href;
    els.joinForm.hidden = true;
    els.chat.hidden = false;
    els.leave.hidden = false;
    addNotice("欢迎 " + name + "，你已进入房间「" + room + "」。Welcome, " + name + "! You are in room “" + room + "”.");

    ensureClient()
      .subscribe(ch)
      .catch(function (err) {
        if (ch === channel) addNotice("无法进入房间 Cannot join: " + err.message, "error");
      });
    els.input.focus();
  }

  function leave() {
    if (client && channel) client.unsubscribe(channel).catch(function () {});
    channel = "";
    els.chat.hidden = true;
    els.leave.hidden = true;
    els.roomTitle.textContent = "";
    els.hint.textContent = hintText;
    els.joinForm.hidden = false;
    els.room.focus();
  }

  function send() {
    var text = els.input.value.trim();
    if (!text || !client || client.state !== "connected" || !channel) return;
    els.input.value = "";
    client.publish(channel, { user: me, text: text }).catch(function (err) {
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
