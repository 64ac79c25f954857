// The page's side of a call as the answerer (receiver/call.py receive_call): wait for the sender's offer,
// answer it, pass the channels' messages to the session, and end on bye, hang-up, a lost connection, the
// sender leaving the room, or silence.

import { encodeControl } from "./control.js";
import { answer, connected, createPeer, ended } from "./peer.js";

const SETUP_TIMEOUT_MS = 30000;
const BYE_GRACE_MS = 2000;

function send(channel, reply) {
  if (reply !== null && channel.readyState === "open") {
    channel.send(reply);
  }
}

/** Resolves once no message has arrived for `timeoutMs`. */
async function idle(session, timeoutMs) {
  for (;;) {
    const left = session.lastMessageMs + timeoutMs - performance.now();
    if (left <= 0) return "idle timeout";
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, 500)));
  }
}

/** Resolves once `channel` closes, or after `ms`. */
function closedOrAfter(channel, ms) {
  return new Promise((resolve) => {
    channel.addEventListener("close", resolve);
    setTimeout(resolve, ms);
  });
}

/**
 * Run one call; resolves with why it ended. `hangUp` is a promise the UI resolves to hang up;
 * `onConnected(pc)` is called once the peer connection is up.
 */
export async function receiveCall(session, sig, iceServers, { hangUp, idleTimeoutMs = 10000, onConnected = () => {} }) {
  const offer = await Promise.race([sig.receive("offer"), hangUp]);
  if (offer === "hung up") return offer;
  const { pc, keypoints, control } = createPeer(iceServers);
  try {
    keypoints.onmessage = (event) => send(keypoints, session.onFrame(wireData(event.data)));
    control.onmessage = (event) => send(control, session.onControl(wireData(event.data)));
    session.sendControl = (data) => send(control, data);
    sig.send("answer", { sdp: await answer(pc, offer.sdp) });
    if ((await Promise.race([connected(pc, SETUP_TIMEOUT_MS), hangUp])) === "hung up") return "hung up";
    session.lastMessageMs = performance.now();
    onConnected(pc);
    const rendering = session.renderLoop();
    const reason = await Promise.race([
      session.bye.then(() => "bye"),
      ended(pc),
      sig.waitGone().then(() => "sender left"),
      idle(session, idleTimeoutMs),
      hangUp,
    ]);
    if (reason === "hung up") {
      send(control, encodeControl("bye", { reason: "receiver hung up", last_seq: null }));
    }
    if (reason === "bye" || reason === "hung up") {
      await closedOrAfter(control, BYE_GRACE_MS); // the sender reads the bye, then closes
    }
    session.finish();
    await rendering;
    return reason;
  } finally {
    session.finish();
    pc.close();
  }
}

/** Binary messages as Uint8Array; text is passed on as it is (and refused by the decoder). */
function wireData(data) {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
}
