// A websocket that reconnects (with back-off) and pings every 25 s, per docs/protocol.md.
// The URL is a function so each reconnect can say the last server id it has (?after=).
// A lost connection is noticed three ways: the socket closes; the browser says it went
// offline (a websocket may otherwise stay "open" on a dead network for minutes); or
// nothing, not even a pong, arrived for two ping periods.
// Reconnects back off (0.5 s doubling to 15 s) with jitter, so that thousands of clients
// dropped together do not come back together. A server too busy to take the socket
// (its database had no turn for it) says so: an `unavailable` error frame with
// `retry_after_ms`, then close 1013; the client waits at least that long (docs/protocol.md,
// "Outages"). The back-off is reset only by `hello`, the server's acceptance.

const PING_MS = 25000;
const SILENT_MS = 2 * PING_MS + 5000;
const TRY_AGAIN_LATER = 1013;

/** `ms` spread over [ms/2, 3ms/2): clients that lost the server together retry apart. */
function jitter(ms) {
  return Math.round(ms / 2 + Math.random() * ms);
}

export class ChatSocket {
  constructor(url, { onFrame, onOpen, onStatus } = {}) {
    this.url = url;
    this.onFrame = onFrame || (() => {});
    this.onOpen = onOpen || (() => {});
    this.onStatus = onStatus || (() => {});
    this.queue = [];
    this.delay = 500;
    this.closed = false;
    this.timer = null;
    this.onOffline = () => this.drop();
    this.onOnline = () => {
      this.delay = 500;
      if (!this.ws) this.reconnect(0);
    };
    window.addEventListener('offline', this.onOffline);
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.closed || this.ws) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}${this.url()}`);
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.heard = Date.now();
      this.onStatus(true);
      this.ping = setInterval(() => {
        if (Date.now() - this.heard > SILENT_MS) this.drop();
        else this.send('ping', {});
      }, PING_MS);
      const waiting = this.queue.splice(0);
      this.onOpen();
      waiting.forEach((frame) => ws.send(frame));
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.heard = Date.now();
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      const data = frame.data || {};
      if (frame.type === 'error' && data.code === 'unavailable' && data.ref === 'connect') {
        // Refused at connect (close 1013 follows): not an error to show, a time to wait.
        this.retryAfter = Number(data.retry_after_ms) || 0;
        return;
      }
      if (frame.type === 'hello') this.delay = 500;
      if (frame.type !== 'pong') this.onFrame(frame.type, frame.data || {}, frame);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.lost(event.code);
    };
  }

  /** Forget the current socket (closing it if it can be) and reconnect later. */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    try { ws.close(); } catch { /* already gone */ }
    this.lost();
  }

  lost(code) {
    this.ws = null;
    clearInterval(this.ping);
    this.onStatus(false);
    if (this.closed) return;
    let wait = jitter(this.delay);
    if (code === TRY_AGAIN_LATER) wait = Math.max(wait, this.retryAfter || jitter(2000));
    if (navigator.onLine === false) wait = 15000;
    this.retryAfter = 0;
    this.reconnect(wait);
    this.delay = Math.min(this.delay * 2, 15000);
  }

  reconnect(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Send a frame now, or when the socket is open again (messages are resent by id anyway). */
  send(type, data) {
    const frame = JSON.stringify({ type, data });
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
    else if (type === 'read') this.queue.push(frame);  // messages: resent from the caller's pending list
  }

  get open() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    window.removeEventListener('offline', this.onOffline);
    window.removeEventListener('online', this.onOnline);
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.ping);
    if (ws) {
      ws.onclose = null;
      ws.close();
    }
  }
}
