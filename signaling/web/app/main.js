// The page: loads the model the server offers, joins a room as the receiver and shows the face rebuilt from
// the pictures the sender sends, with frame rate, kbps and latency; pictures dropped on the page serve frames
// that name none of the sender's. URL: /room/NAME joins NAME at once; the query takes ?model=NAME,
// ?ep=wasm|webgpu, ?stun=… ?turn=… ?turn-user=… ?turn-password=…, ?record=1 (keep the messages in
// window.kpc.session.recorded). window.kpc exposes the page's state to tests.

import { receiveCall } from "./call.js";
import { iceServers, transportBytes } from "./peer.js";
import { Renderer, modelIndex, pictureImage } from "./renderer.js";
import { Session } from "./session.js";
import { SignalingClient } from "./signaling.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const kpc = (window.kpc = { renderer: null, session: null });
let hangUp = () => {};

function setState(state, text) {
  document.body.dataset.state = state;
  $("status").textContent = text;
}

function roomFromUrl() {
  const match = location.pathname.match(/^\/room\/([A-Za-z0-9_.-]{1,64})\/?$/);
  return match ? match[1] : params.get("room");
}

function signalingUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

async function loadModel() {
  const index = await modelIndex();
  const wanted = params.get("model");
  const entry = index.find((e) => !wanted || e.name === wanted || e.model === wanted);
  if (!entry) {
    throw new Error(wanted ? `the server has no model ${wanted}` : "the server has no exported model (see docs/web.md)");
  }
  kpc.renderer = await Renderer.load(entry, $("face"), params.get("ep"));
  $("model").textContent = `${entry.model} ${entry.model_version}, ${entry.resolution} px, ${kpc.renderer.provider}`;
}

async function takePictures(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/"));
  if (!images.length || !kpc.renderer) return;
  const size = kpc.renderer.entry.resolution;
  await kpc.renderer.setReferences(await Promise.all(images.map((f) => pictureImage(f, size))));
  $("refs").textContent = `${images.length} picture${images.length > 1 ? "s" : ""} of your own`;
  document.body.dataset.refs = String(images.length);
}

function showStats(session, pc, room) {
  let last = null;
  return setInterval(async () => {
    const s = session.stats;
    if (document.body.dataset.state === "in-call") {
      $("status").textContent = `in a call in room ${room}${s.rendered ? "" : ": waiting for the caller's picture"}`;
    }
    const r = s.recent();
    const bytes = await transportBytes(pc);
    const now = performance.now();
    const wire = last ? (8 * (bytes.received - last.bytes.received)) / (now - last.now) : null;
    last = { bytes, now };
    const ms = (v) => (v === null ? "–" : `${v.toFixed(0)} ms`);
    $("stats").textContent =
      `${r.fps.toFixed(1)} fps · ${r.payloadKbps.toFixed(1)} kbps payload, ${wire === null ? "–" : wire.toFixed(1)} kbps wire · ` +
      `latency ${ms(r.latencyMs)} (render ${ms(r.renderMs)}) · frames ${s.received} received, ${s.rendered} drawn, ` +
      `${s.spoiled + s.stale} dropped, ${s.withoutPicture} without a picture · ` +
      `pictures ${s.picturesHeld} held, ${s.picturesRefused} refused`;
  }, 500);
}

async function join(room) {
  $("join-button").disabled = true;
  $("hangup").disabled = false;
  kpc.renderer.forgetPictures();
  const session = (kpc.session = new Session(
    { identity: kpc.renderer.identity, resolution: kpc.renderer.entry.resolution },
    kpc.renderer,
    params.get("record") === "1",
  ));
  // The room token travels in the URL's fragment (#token=…), which the browser never sends to a server.
  const sig = new SignalingClient(signalingUrl(), room, new URLSearchParams(location.hash.slice(1)).get("token"));
  let ticker = null;
  try {
    setState("joining", `joining room ${room}…`);
    const joined = await sig.open();
    setState("waiting", joined.peer ? "the sender is here: connecting…" : `in room ${room}: waiting for the sender`);
    const reason = await receiveCall(session, sig, iceServers(params), {
      hangUp: new Promise((resolve) => (hangUp = () => resolve("hung up"))),
      onConnected: (pc) => {
        setState("in-call", `in a call in room ${room}: waiting for the caller's picture`);
        ticker = showStats(session, pc, room);
      },
    });
    setState("ended", `call ended: ${reason}${session.refusal ? ` (refused: ${session.refusal})` : ""}`);
  } catch (err) {
    setState("failed", `call failed: ${err.message}`);
  } finally {
    clearInterval(ticker);
    sig.close();
    $("join-button").disabled = false;
    $("hangup").disabled = true;
  }
}

function wireUp() {
  const room = roomFromUrl();
  $("room").value = room ?? "";
  $("join").addEventListener("submit", (event) => {
    event.preventDefault();
    join($("room").value.trim());
  });
  $("hangup").addEventListener("click", () => hangUp());
  $("pictures").addEventListener("change", (event) => takePictures(event.target.files));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => event.preventDefault());
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    takePictures(event.dataTransfer.files);
  });
  return room;
}

const room = wireUp();
setState("loading", "loading the model…");
try {
  await loadModel();
  setState("ready", "ready: join a room (the sender sends pictures of the caller; you may drop some too)");
  if (room) {
    join(room);
  }
} catch (err) {
  setState("failed", `cannot load the model: ${err.message}`);
}
