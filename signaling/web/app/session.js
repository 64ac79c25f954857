// The page's handling of a call's messages (receiver/session.py): the hello check, latest-sequence-wins,
// acks, rendering the newest frame, bye. Frames are decoded as they arrive; only the newest waits for the
// renderer, and the canvas keeps the last frame drawn through losses.

import { decodeControl, encodeControl } from "./control.js";
import { CallStats } from "./stats.js";
import { ACK_INTERVAL_S, FrameDecoder, MissingReference, WireError, WireRefused, checkHello, encodeAck } from "./wire.js";

export class Session {
  /**
   * @param expect {identity: {modelId, modelVersion, numKeypoints}, resolution}
   * @param renderer {ready: boolean, render: async (frame) => void}, drawing frames once it is ready
   *   (it has references); until then the newest frame waits
   * @param record keep every message received (for tests and debugging)
   */
  constructor(expect, renderer, record = false) {
    this.expect = expect;
    this.renderer = renderer;
    this.stats = new CallStats();
    this.hello = null;
    this.decoder = null;
    this.refusal = null;
    this.lastMessageMs = performance.now();
    this.newestSeq = -1;
    this.lastAckMs = -Infinity;
    this.pending = null; // the newest decoded frame not yet rendered
    this.wakeRenderer = null;
    this.closed = false;
    this.lastRenderedSeq = null;
    this.recorded = record ? [] : null;
    this.bye = new Promise((resolve) => (this.saidBye = resolve));
  }

  log(level, ...args) {
    console[level]("[session]", ...args);
  }

  /** A control message; returns the reply to send, if any. */
  onControl(data) {
    this.lastMessageMs = performance.now();
    this.recorded?.push(["C", data]);
    let msg;
    try {
      msg = decodeControl(data);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.stats.malformed += 1;
      this.log("warn", "dropped a malformed control message:", err.message);
      return null;
    }
    if (msg.type === "hello") {
      return this.onHello(msg);
    }
    if (msg.type === "stats") {
      this.stats.sender = msg;
    } else if (msg.type === "bye") {
      if (typeof msg.last_seq === "bigint" && msg.last_seq >= -1n) {
        this.stats.senderLastSeq = Number(msg.last_seq);
      }
      this.log("info", `sender said bye (${msg.reason ?? "no reason"})`);
      this.saidBye(msg.reason ?? "no reason");
      return encodeControl("bye", { reason: "bye received" });
    }
    return null;
  }

  onHello(msg) {
    const reason = checkHello(msg, this.expect.identity, this.expect.resolution);
    if (reason !== null) {
      this.stats.refused += 1;
      this.refusal = reason;
      this.log("error", "refused the call:", reason);
      return encodeControl("refuse", { reason });
    }
    this.hello = msg;
    this.decoder = FrameDecoder.fromHello(msg, this.expect.identity);
    this.log("info", `accepted the sender: model ${msg.model} version ${msg.model_version}, ${msg.fps} fps`);
    return encodeControl("accept");
  }

  /** The decoded frame, or null when it is malformed, refused, stale or spoiled (each counted). */
  checkFrame(data) {
    this.lastMessageMs = performance.now();
    this.recorded?.push(["F", data]);
    let seq = null;
    try {
      if (this.decoder === null) {
        throw new WireRefused("frame before an accepted hello");
      }
      [seq] = this.decoder.header(data);
      if (seq <= this.newestSeq) {
        this.stats.frameReceived(seq, data.length);
        this.stats.stale += 1;
        return null;
      }
      const frame = this.decoder.decode(data);
      this.stats.frameReceived(frame.seq, frame.size);
      this.newestSeq = frame.seq;
      return frame;
    } catch (err) {
      if (err instanceof WireRefused) {
        this.stats.refused += 1;
        if (this.stats.refused === 1 || this.stats.refused % 100 === 0) {
          this.log("error", `refused frame message (${this.stats.refused} so far):`, err.message);
        }
      } else if (err instanceof WireError) {
        this.stats.malformed += 1;
        this.log("warn", `dropped a malformed frame message (${this.stats.malformed} so far):`, err.message);
      } else if (err instanceof MissingReference) {
        this.stats.frameReceived(seq, data.length);
        this.stats.spoiled += 1;
      } else {
        throw err;
      }
      return null;
    }
  }

  /** Network path: keep the newest frame for the renderer; returns an ack to send when one is due. */
  onFrame(data) {
    const frame = this.checkFrame(data);
    if (frame === null) {
      return null;
    }
    if (this.pending !== null) {
      this.stats.skipped += 1;
    }
    this.pending = frame;
    this.wakeRenderer?.();
    const now = performance.now();
    if (frame.refSeq !== null && now - this.lastAckMs < ACK_INTERVAL_S * 1000) {
      return null;
    }
    this.lastAckMs = now;
    return encodeAck(frame.seq);
  }

  /** Draw the newest frame whenever there is one and the renderer is ready, until `finish`. */
  async renderLoop() {
    while (!this.closed) {
      if (this.pending === null || !this.renderer.ready) {
        await new Promise((resolve) => (this.wakeRenderer = resolve));
        continue;
      }
      const frame = this.pending;
      this.pending = null;
      const t0 = performance.now();
      await this.renderer.render(frame);
      this.stats.frameRendered(frame, performance.now() - t0);
      this.lastRenderedSeq = frame.seq;
    }
  }

  /** The renderer became ready (references arrived): draw the newest frame. */
  poke() {
    this.wakeRenderer?.();
  }

  finish() {
    this.closed = true;
    this.wakeRenderer?.();
  }
}
