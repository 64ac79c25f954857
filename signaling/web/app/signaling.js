// The page's side of signaling (signaling/client.py): join a room as the receiver, take the sender's offer,
// send the answer, and hear when the sender leaves. Messages are JSON objects with a `type` (signaling/protocol.py).

export class SignalingError extends Error {}

export class SignalingClient {
  constructor(url, room, token = null) {
    this.url = url;
    this.room = room;
    this.token = token; // the room's secret (docs/call.md, "Who can join a room"); null joins an open room
    this.queue = [];
    this.waiters = [];
    this.closed = null; // the reason, once the socket closed
  }

  /** Connect and join; resolves with the server's `joined` message. */
  async open() {
    this.ws = new WebSocket(this.url);
    this.ws.onmessage = (event) => this.push(event.data);
    this.ws.onclose = (event) => {
      this.closed = event.reason ? `code ${event.code}: ${event.reason}` : `code ${event.code}`;
      this.wake();
    };
    await new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new SignalingError(`cannot reach the signaling server ${this.url}`));
    });
    this.send("join", this.token ? { room: this.room, role: "receiver", token: this.token }
                                 : { room: this.room, role: "receiver" });
    return this.receive("joined");
  }

  push(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      msg = null;
    }
    this.queue.push(msg !== null && typeof msg === "object" && typeof msg.type === "string" ? msg : { type: "invalid" });
    this.wake();
  }

  wake() {
    for (const wake of this.waiters.splice(0)) {
      wake();
    }
  }

  async next() {
    while (this.queue.length === 0) {
      if (this.closed !== null) {
        throw new SignalingError(`signaling connection closed: ${this.closed}`);
      }
      await new Promise((resolve) => this.waiters.push(resolve));
    }
    return this.queue.shift();
  }

  send(type, fields = {}) {
    if (this.ws.readyState !== WebSocket.OPEN) {
      throw new SignalingError(`signaling connection closed: ${this.closed}`);
    }
    this.ws.send(JSON.stringify({ type, ...fields }));
  }

  /** The next message of one of `kinds` (`peer-joined` taken in passing); anything else is an error. */
  async receive(...kinds) {
    for (;;) {
      const msg = await this.next();
      if (kinds.includes(msg.type)) {
        return msg;
      }
      if (msg.type === "peer-joined") {
        continue;
      }
      if (msg.type === "peer-left" || msg.type === "bye") {
        throw new SignalingError(`the ${msg.role ?? "other peer"} left before the call was set up`);
      }
      throw new SignalingError(`expected ${kinds.join(" or ")} from the signaling server, got ${msg.type} ${msg.reason ?? ""}`);
    }
  }

  /** Resolves with `peer-left`, `bye` or `signaling-closed` once the sender is gone. */
  async waitGone() {
    for (;;) {
      let msg;
      try {
        msg = await this.next();
      } catch {
        return "signaling-closed";
      }
      if (msg.type === "peer-left" || msg.type === "bye") {
        return msg.type;
      }
    }
  }

  close() {
    this.ws?.close();
  }
}
