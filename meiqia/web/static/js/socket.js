// A websocket that reconnects (with back-off) and pings every 25 s, per docs/protocol.md.
// The URL is a function so each reconnect can say the last server id it has (?after=).

export class ChatSocket {
  constructor(url, { onFrame, onOpen, onStatus } = {}) {
    this.url = url;
    this.onFrame = onFrame || (() => {});
    this.onOpen = onOpen || (() => {});
    this.onStatus = onStatus || (() => {});
    this.queue = [];
    this.delay = 500;
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}${this.url()}`);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      this.onStatus(true);
      this.ping = setInterval(() => this.send('ping', {}), 25000);
      const waiting = this.queue.splice(0);
      this.onOpen();
      waiting.forEach((frame) => ws.send(frame));
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.type !== 'pong') this.onFrame(frame.type, frame.data || {}, frame);
    };
    ws.onclose = () => {
      clearInterval(this.ping);
      this.onStatus(false);
      if (this.closed) return;
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 15000);
    };
  }

  /** Send a frame now, or when the socket is open again (messages are resent by id anyway). */
  send(type, data) {
    const frame = JSON.stringify({ type, data });
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
    else if (type === 'read') this.queue.push(frame);  // messages: resent from the caller's pending list
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }
}
