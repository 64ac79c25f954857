// Reference pictures arriving over the call, the receiver's side (shared_model/wire/pictures.py PictureInbox):
// one picture at a time, announced and then sent in chunks, held once decoded and prepared, at most
// `maxPictures` of them. Anything out of order is a PictureError: the picture is refused, the call goes on.

import { CHUNK_BYTES } from "./control.js";
import { PictureError } from "./picture-codec.js";

const chunksOf = (announced) => Math.ceil(announced.size / CHUNK_BYTES);

export class PictureInbox {
  constructor(maxPictures) {
    this.maxPictures = maxPictures;
    this.held = new Set();
    this.incoming = null; // {announced, parts: Uint8Array[], chunks}
    this.ready = null; // complete, being decoded and prepared
    this.refused = []; // their late chunks are dropped quietly (the last 16)
  }

  /** A picture will follow (a checked `picture` message); PictureError when it must be refused. */
  announce(msg) {
    if (this.incoming !== null || this.ready !== null) {
      throw new PictureError(`picture ${msg.id} announced while another is in transfer (one at a time)`);
    }
    if (this.held.has(msg.id)) {
      throw new PictureError(`picture ${msg.id} is already held`);
    }
    if (msg.replaces !== null && (!this.held.has(msg.replaces) || msg.replaces === msg.id)) {
      throw new PictureError(`picture ${msg.id} replaces picture ${msg.replaces}, which is not held`);
    }
    if (msg.replaces === null && this.held.size >= this.maxPictures) {
      throw new PictureError(`too many pictures: this receiver holds at most ${this.maxPictures}`);
    }
    this.incoming = { announced: msg, parts: [], chunks: 0 };
  }

  /** Add a chunk; `[announcement, bytes]` once the last one is in, else null (also for a late chunk of a
   * refused picture). PictureError, and the transfer dropped, for a chunk out of order or of the wrong size. */
  chunk(msg) {
    const incoming = this.incoming;
    if (incoming === null || incoming.announced.id !== msg.id) {
      if (this.refused.includes(msg.id)) return null;
      throw new PictureError(`chunk of picture ${msg.id}, which is not in transfer`);
    }
    const { announced } = incoming;
    const expected = Math.min(CHUNK_BYTES, announced.size - incoming.chunks * CHUNK_BYTES);
    if (msg.index !== incoming.chunks || msg.data.length !== expected) {
      this.drop(msg.id);
      throw new PictureError(
        `picture ${msg.id}: chunk ${msg.index} of ${msg.data.length} bytes, expected chunk ${incoming.chunks} of ${expected}`,
      );
    }
    incoming.parts.push(msg.data);
    incoming.chunks += 1;
    if (incoming.chunks < chunksOf(announced)) return null;
    this.incoming = null;
    this.ready = announced;
    const data = new Uint8Array(announced.size);
    incoming.parts.forEach((part, i) => data.set(part, i * CHUNK_BYTES));
    return [announced, data];
  }

  /** The picture is ready to render from: hold it (dropping the one it replaces); the ack's fields. */
  hold(announced) {
    this.ready = null;
    if (announced.replaces !== null) this.held.delete(announced.replaces);
    this.held.add(announced.id);
    return { id: announced.id, held: [...this.held].sort((a, b) => a - b) };
  }

  /** Forget a transfer that failed (its later chunks are then dropped quietly). */
  drop(picture) {
    if (this.incoming?.announced.id === picture) this.incoming = null;
    if (this.ready?.id === picture) this.ready = null;
    this.refused = [...this.refused, picture].slice(-16);
  }
}
