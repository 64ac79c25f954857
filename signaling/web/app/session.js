// The page's handling of a call's messages (receiver/session.py): the hello check, reference pictures over
// the call, latest-sequence-wins, acks, rendering the newest frame from the picture it names, bye. Frames are
// decoded as they arrive; only the newest waits for the renderer, and the canvas keeps the last frame drawn.
// Before the first picture is held nothing is drawn (unless the page has pictures of its own).

import { MAX_PICTURES, checkHello, decodeControl, encodeControl } from "./control.js";
import { PICTURE_CODEC, PictureError } from "./picture-codec.js";
import { PictureInbox } from "./pictures.js";
import { CallStats } from "./stats.js";
import { ACK_INTERVAL_S, FrameDecoder, MissingReference, WireError, WireRefused, encodeAck } from "./wire.js";

export class Session {
  /**
   * @param expect {identity: {modelId, modelVersion, numKeypoints}, resolution}
   * @param renderer {own: how many pictures of its own, addPicture: async (id, bytes, replaces), rejecting a
   *   picture it cannot use, render: async (frame) => false when it does not hold the picture the frame names}
   * @param record keep every message received (for tests and debugging)
   */
  constructor(expect, renderer, record = false) {
    this.expect = expect;
    this.renderer = renderer;
    this.stats = new CallStats();
    this.hello = null;
    this.decoder = null;
    this.refusal = null;
    this.inbox = new PictureInbox(MAX_PICTURES);
    this.sendControl = () => {}; // replies that come later than the message they answer (picture acks)
    this.preparing = null; // the picture being decoded and prepared
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

  /** A control message (Uint8Array); returns the reply to send at once, if any. */
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
      return this.hello === null && this.refusal === null ? this.refuse(err.message) : null;
    }
    if (msg.type === "hello") {
      return this.onHello(msg);
    }
    if (this.hello === null) {
      this.stats.refused += 1;
      this.log("warn", `refused a ${msg.type} message before an accepted hello`);
    } else if (msg.type === "picture" || msg.type === "chunk") {
      this.onPicture(msg, data.length);
    } else if (msg.type === "stats") {
      this.stats.sender = { crop: msg.crop, ...msg.counts };
    } else if (msg.type === "bye") {
      if (msg.last_seq !== null) this.stats.senderLastSeq = msg.last_seq;
      this.log("info", `sender said bye (${msg.reason})`);
      this.saidBye(msg.reason);
      return encodeControl("bye", { reason: "bye received", last_seq: null });
    } else {
      this.log("warn", `ignored a ${msg.type} message, which a sender does not send`);
    }
    return null;
  }

  refuse(reason) {
    this.stats.refused += 1;
    this.refusal = reason;
    this.log("error", "refused the call:", reason);
    return encodeControl("refuse", { reason: reason.slice(0, 1000) });
  }

  onHello(msg) {
    if (this.hello !== null) {
      this.log("warn", "ignored a second hello");
      return null;
    }
    const reason = checkHello(msg, this.expect.identity, this.expect.resolution, PICTURE_CODEC);
    if (reason !== null) {
      return this.refuse(reason);
    }
    this.hello = msg;
    this.decoder = FrameDecoder.fromHello(msg, this.expect.identity);
    this.log("info", `accepted the sender: model ${msg.model} version ${msg.model_version}, ${msg.fps} fps`);
    return encodeControl("accept", { own_pictures: this.renderer.own, max_pictures: this.inbox.maxPictures });
  }

  // --- reference pictures ---

  onPicture(msg, size) {
    this.stats.pictureReceived(size);
    let complete;
    try {
      if (msg.type === "picture") {
        this.inbox.announce(msg);
        return;
      }
      complete = this.inbox.chunk(msg);
    } catch (err) {
      if (!(err instanceof PictureError)) throw err;
      this.pictureRefused(msg.id, err.message);
      return;
    }
    if (complete !== null) {
      this.preparing = this.prepare(...complete);
    }
  }

  pictureRefused(picture, reason) {
    this.inbox.drop(picture);
    this.stats.picturesRefused += 1;
    this.log("warn", `refused picture ${picture} (${this.stats.picturesRefused} so far): ${reason}`);
    this.sendControl(encodeControl("picture-refused", { id: picture, reason: reason.slice(0, 1000) }));
  }

  /** Decode and prepare a complete picture (in the render worker), then hold and acknowledge it. */
  async prepare(announced, data) {
    try {
      await this.renderer.addPicture(announced.id, data, announced.replaces);
    } catch (err) {
      this.pictureRefused(announced.id, err.message);
      return;
    }
    const ack = this.inbox.hold(announced);
    this.stats.picturesHeld += 1;
    this.log("info", `holding picture ${announced.id} (${data.length} bytes)`);
    this.sendControl(encodeControl("picture-ack", ack));
  }

  // --- keypoint channel ---

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

  /** Draw the newest frame whenever there is one, until `finish`; a frame naming a picture this end does not
   * hold (or 0 while it has none of its own) is counted and not shown. */
  async renderLoop() {
    while (!this.closed) {
      if (this.pending === null) {
        await new Promise((resolve) => (this.wakeRenderer = resolve));
        continue;
      }
      const frame = this.pending;
      this.pending = null;
      const t0 = performance.now();
      if (await this.renderer.render(frame)) {
        this.stats.frameRendered(frame, performance.now() - t0);
        this.lastRenderedSeq = frame.seq;
        continue;
      }
      this.stats.withoutPicture += 1;
      if (this.stats.withoutPicture === 1 || this.stats.withoutPicture % 100 === 0) {
        this.log("info", `frame ${frame.seq} names picture ${frame.picture}, which is not held: not shown`);
      }
    }
  }

  finish() {
    this.closed = true;
    this.wakeRenderer?.();
  }
}
