// What the page measures during a call (receiver/stats.py): counts, and rates over a sliding window for the
// status line. Latency is capture (the sender's clock, in the message) to drawn (this browser's clock): exact
// on one host, including the clocks' offset across machines.

const WINDOW_MS = 2000;

/** Milliseconds since the Unix epoch, with the sub-millisecond part. */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

function median(values) {
  if (values.length === 0) {
    return null;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export class CallStats {
  constructor() {
    Object.assign(this, { received: 0, rendered: 0, malformed: 0, refused: 0, stale: 0, spoiled: 0, skipped: 0 });
    this.withoutPicture = 0; // decoded, but naming a picture this end does not hold: not shown
    Object.assign(this, { picturesHeld: 0, picturesRefused: 0 });
    this.payloadBytes = 0; // frame messages and picture messages
    this.pictureBytes = 0;
    this.lastSeq = null;
    this.senderLastSeq = null; // from the sender's bye
    this.sender = null; // the sender's last stats message
    this.arrivals = []; // [ms, bytes] within the window
    this.renders = []; // [ms, latency ms, render ms] within the window
    this.latencies = []; // every render's latency (ms)
    this.renderMs = []; // every render's duration (ms)
    this.firstRenderMs = null;
    this.lastRenderMs = null;
  }

  /** A picture message arrived (counted whether or not the picture is then used). */
  pictureReceived(size) {
    this.payloadBytes += size;
    this.pictureBytes += size;
    this.arrivals.push([nowMs(), size]);
  }

  frameReceived(seq, size) {
    this.received += 1;
    this.payloadBytes += size;
    this.lastSeq = this.lastSeq === null ? seq : Math.max(this.lastSeq, seq);
    this.arrivals.push([nowMs(), size]);
  }

  frameRendered(frame, renderMs) {
    this.rendered += 1;
    const now = nowMs();
    const latency = now - Number(frame.captureNs / 1000n) / 1000;
    this.latencies.push(latency);
    this.renderMs.push(renderMs);
    this.renders.push([now, latency, renderMs]);
    this.firstRenderMs ??= now;
    this.lastRenderMs = now;
  }

  trim(now) {
    for (const list of [this.arrivals, this.renders]) {
      while (list.length && list[0][0] < now - WINDOW_MS) {
        list.shift();
      }
    }
  }

  /** Rates over the last two seconds: {fps, payloadKbps, latencyMs, renderMs}. */
  recent() {
    const now = nowMs();
    this.trim(now);
    const bytes = this.arrivals.reduce((sum, [, size]) => sum + size, 0);
    return {
      fps: (this.renders.length * 1000) / WINDOW_MS,
      payloadKbps: (8 * bytes) / WINDOW_MS,
      latencyMs: median(this.renders.map(([, latency]) => latency)),
      renderMs: median(this.renders.map(([, , ms]) => ms)),
    };
  }

  /** The whole call's counts (as the Python receiver's --stats-out names them). */
  report() {
    return {
      frames_received: this.received,
      frames_rendered: this.rendered,
      frames_stale: this.stale,
      frames_spoiled: this.spoiled,
      frames_skipped: this.skipped,
      frames_without_picture: this.withoutPicture,
      malformed: this.malformed,
      refused: this.refused,
      payload_bytes: this.payloadBytes,
      latency_ms_median: median(this.latencies),
      render_ms_median: median(this.renderMs),
      render_fps: this.rendered > 1 ? ((this.rendered - 1) * 1000) / (this.lastRenderMs - this.firstRenderMs) : null,
      sender_last_seq: this.senderLastSeq,
      pictures: { held: this.picturesHeld, refused: this.picturesRefused, bytes: this.pictureBytes },
    };
  }
}
