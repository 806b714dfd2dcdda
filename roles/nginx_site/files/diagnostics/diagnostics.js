// The diagnostics page of role nginx_site: one WebSocket client of this site, shown as it goes.
// Same origin only (the page's CSP allows nothing else); the token goes in the first message,
// never in the URL (nginx would log it). Every text from the server is shown with textContent.
"use strict";

// Close codes a client of wsnotify can see, and what each means for it (service/README.md).
const CLOSE_CODES = [
  [1000, "Normal closure", "Closed on purpose (the Disconnect button)."],
  [1001, "Going away", "The service is shutting down and was bound by hand: nothing restarts it by itself."],
  [1002, "Protocol error", "A frame broke RFC 6455 (the client's fault)."],
  [1006, "Abnormal closure", "No close frame: the network, TLS or nginx failed, or the upgrade was refused (e.g. 503 at capacity, 502 with no backend)."],
  [1007, "Invalid data", "A text message or close reason was not UTF-8."],
  [1009, "Message too big", "A client message over 64 KiB."],
  [1011, "Ping timeout", "The client did not answer the server's ping in time."],
  [1012, "Service restart", "The service is restarting: reconnect with jittered backoff, resuming after the last id."],
  [1013, "Try again later", "At capacity, a client too slow to read, or recovery unavailable: reconnect with backoff."],
  [4400, "Bad after_id", "after_id must be a non-negative integer: the id of the last notification received."],
  [4401, "Unauthorized", "The token was refused: expired, signed with another secret, wrong audience or issuer, or none sent in time."],
  [4429, "Too many connections", "This user already has the most connections the service allows per user."],
];
const MEANING = new Map(CLOSE_CODES.map(([code, name, text]) => [code, [name, text]]));
// Codes after which a client should come back by itself (with backoff).
const RECONNECT = new Set([1001, 1006, 1011, 1012, 1013]);
const PING_EVERY_MS = 5000;

const $ = (id) => document.getElementById(id);
const body = document.body;
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${body.dataset.wsPath}`;
const apiPath = body.dataset.apiPath;

let socket = null;
let started = 0;
let lastId = null;
let attempts = 0;
let reconnectTimer = null;
let pingTimer = null;
let pingId = 0;
const pending = new Map(); // ping id -> performance.now() when sent
const rtts = [];
let received = 0;

function log(text, error = false) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${text}`;
  if (error) item.className = "error";
  $("log").prepend(item);
}

function setState(state) {
  $("state").textContent = state;
  $("state").dataset.state = state;
  const open = state === "connected" || state === "authenticating" || state === "connecting";
  $("connect").disabled = open;
  $("disconnect").disabled = !open && reconnectTimer === null;
  $("ping").disabled = state !== "connected";
}

function ms(value) {
  return `${value.toFixed(1)} ms`;
}

function seen(id) {
  if (typeof id === "number" && (lastId === null || id > lastId)) {
    lastId = id;
    $("last-id").textContent = String(id);
  }
}

function describe(notification) {
  const item = document.createElement("li");
  item.dataset.id = String(notification.id);
  const to = notification.user_id === null ? "broadcast" : `user ${notification.user_id}`;
  const title = document.createElement("strong");
  title.textContent = notification.title;
  item.append(`#${notification.id} (${to}) `, title);
  if (notification.body) item.append(` ${notification.body}`);
  item.append(` ${notification.created_at}`);
  return item;
}

function token() {
  return $("token").value.trim();
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (!token()) {
    log("paste a token first", true);
    return;
  }
  const typed = $("after-id").value.trim();
  if (lastId === null && typed !== "") lastId = Number(typed);
  started = performance.now();
  setState("connecting");
  log(`connecting to ${wsUrl}`);
  socket = new WebSocket(wsUrl);
  const current = socket;
  socket.onopen = () => {
    $("open-ms").textContent = ms(performance.now() - started);
    setState("authenticating");
    const auth = { type: "auth", token: token() };
    if (lastId !== null) auth.after_id = lastId;
    current.send(JSON.stringify(auth));
  };
  socket.onmessage = (event) => message(current, event.data);
  socket.onerror = () => log("WebSocket error (the close that follows says more)", true);
  socket.onclose = (event) => closed(current, event);
}

function message(current, data) {
  let parsed;
  try {
    parsed = JSON.parse(data);
  } catch {
    log(`unreadable message: ${String(data).slice(0, 200)}`, true);
    return;
  }
  switch (parsed.type) {
    case "welcome":
      attempts = 0;
      $("handshake-ms").textContent = ms(performance.now() - started);
      $("user").textContent = String(parsed.user_id);
      setState("connected");
      log(`welcome: user ${parsed.user_id}`);
      clearInterval(pingTimer);
      pingTimer = setInterval(ping, PING_EVERY_MS);
      ping();
      break;
    case "notification":
      seen(parsed.id);
      received += 1;
      $("notification-count").textContent = String(received);
      $("notifications").prepend(describe(parsed));
      break;
    case "pong": {
      const sent = pending.get(parsed.id);
      if (sent === undefined) break;
      pending.delete(parsed.id);
      const rtt = performance.now() - sent;
      rtts.push(rtt);
      if (rtts.length > 100) rtts.shift();
      const sorted = [...rtts].sort((a, b) => a - b);
      $("rtt-ms").textContent = ms(rtt);
      $("rtt-stats").textContent =
        `${rtts.length} pongs, min ${ms(sorted[0])}, median ${ms(sorted[Math.floor(sorted.length / 2)])}`;
      break;
    }
    case "recovered":
      log(`recovered ${parsed.count} missed notification(s), cursor ${parsed.last_id}` +
        (parsed.complete ? "" : ": more remain, fetch the API catch-up"));
      seen(parsed.last_id);
      if (!parsed.complete) fetchCatchUp();
      break;
    case "resync":
      log("resync: the service lost Redis for a moment; fetching the API catch-up");
      fetchCatchUp();
      break;
    default:
      log(`message: ${String(data).slice(0, 200)}`);
  }
}

function ping() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  pingId += 1;
  pending.set(pingId, performance.now());
  if (pending.size > 20) pending.delete(pending.keys().next().value);
  socket.send(JSON.stringify({ type: "ping", id: pingId }));
}

function closed(current, event) {
  if (current !== socket) return;
  clearInterval(pingTimer);
  pingTimer = null;
  pending.clear();
  socket = null;
  const [name, text] = MEANING.get(event.code) || ["", "Not a code this service sends."];
  $("close-code").textContent = String(event.code);
  $("close-meaning").textContent = `${name}${event.reason ? ` "${event.reason}"` : ""}: ${text}`;
  for (const row of $("close-codes").tBodies[0].rows) {
    row.classList.toggle("current", row.dataset.code === String(event.code));
  }
  log(`closed ${event.code} ${name}${event.reason ? ` (${event.reason})` : ""}`, event.code !== 1000);
  if ($("auto-reconnect").checked && RECONNECT.has(event.code)) {
    // Jittered exponential backoff: 0.5 s doubling to 30 s, each wait a random 50-100 % of it.
    const ceiling = Math.min(30000, 500 * 2 ** attempts);
    const wait = ceiling * (0.5 + Math.random() / 2);
    attempts += 1;
    setState("reconnecting");
    log(`reconnecting in ${(wait / 1000).toFixed(1)} s (attempt ${attempts})`);
    reconnectTimer = setTimeout(connect, wait);
    $("disconnect").disabled = false;
  } else {
    setState("closed");
  }
}

function disconnect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (socket) socket.close(1000, "diagnostics page");
  else setState("closed");
}

async function fetchCatchUp() {
  // After the id typed in the field, else after the last one seen (what a client missed).
  const typed = $("after-id").value.trim();
  const after = typed !== "" ? Number(typed) : lastId === null ? 0 : lastId;
  const list = $("api");
  $("api-status").textContent = "fetching...";
  try {
    // From the origin, not relative: a page opened as https://user:password@host/... would
    // hand its credentials to a relative URL, and fetch refuses URLs holding credentials.
    const url = new URL(`${apiPath}?after_id=${after}&limit=100`, location.origin);
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${token()}` },
      cache: "no-store",
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("api-status").textContent = `${response.status}: ${answer.error || response.statusText}`;
      log(`API catch-up answered ${response.status}`, true);
      return;
    }
    list.replaceChildren(...answer.notifications.map(describe));
    $("api-status").textContent =
      `${response.status}: ${answer.notifications.length} after id ${after}`;
    for (const notification of answer.notifications) seen(notification.id);
  } catch (error) {
    $("api-status").textContent = `failed: ${error}`;
    log(`API catch-up failed: ${error}`, true);
  }
}

function start() {
  $("ws-url").textContent = wsUrl;
  const rows = $("close-codes").tBodies[0];
  for (const [code, name, text] of CLOSE_CODES) {
    const row = rows.insertRow();
    row.dataset.code = String(code);
    for (const cell of [String(code), name, text]) row.insertCell().textContent = cell;
  }
  $("connect").addEventListener("click", connect);
  $("disconnect").addEventListener("click", disconnect);
  $("ping").addEventListener("click", ping);
  $("fetch").addEventListener("click", fetchCatchUp);
  setState("disconnected");
}

start();
