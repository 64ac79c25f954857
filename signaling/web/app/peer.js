// The browser's peer connection as the answerer (receiver/call.py, shared_model/call/rtc.py): the two data
// channels negotiated out of band with the sender's ids, and a non-trickle answer (every ICE candidate in the
// SDP, since the signaling server relays only offer / answer / bye).

export const KEYPOINT_CHANNEL_ID = 0;
export const CONTROL_CHANNEL_ID = 1;
const GATHER_TIMEOUT_MS = 10000;

/** ICE servers from the page's query (?stun=stun:host:3478&turn=turn:host:3478&turn-user=U&turn-password=P). */
export function iceServers(params) {
  const servers = [];
  if (params.get("stun")) {
    servers.push({ urls: params.get("stun") });
  }
  if (params.get("turn")) {
    servers.push({ urls: params.get("turn"), username: params.get("turn-user"), credential: params.get("turn-password") });
  }
  return servers;
}

/** A peer connection with the keypoint and control channels, as both ends create them. */
export function createPeer(servers) {
  const pc = new RTCPeerConnection({ iceServers: servers });
  const keypoints = pc.createDataChannel("kp", { negotiated: true, id: KEYPOINT_CHANNEL_ID, ordered: false, maxRetransmits: 0 });
  const control = pc.createDataChannel("ctl", { negotiated: true, id: CONTROL_CHANNEL_ID, ordered: true });
  keypoints.binaryType = "arraybuffer";
  control.binaryType = "arraybuffer";
  return { pc, keypoints, control };
}

/** Answer `offerSdp`; resolves with the answer's SDP once ICE gathering is complete. */
export async function answer(pc, offerSdp) {
  await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, GATHER_TIMEOUT_MS); // send what was gathered so far
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }
  return pc.localDescription.sdp;
}

/** Resolves with the connection state once it is connected, or rejects when it fails or times out. */
export function connected(pc, timeoutMs) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pc.connectionState === "connected") {
        resolve();
      } else if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        reject(new Error(`the peer connection ${pc.connectionState}; check ICE servers / firewalls`));
      }
    };
    setTimeout(() => reject(new Error(`the peer connection did not come up within ${timeoutMs / 1000} s`)), timeoutMs);
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

/** Resolves once the connection fails or closes (the sender vanished or hung up). */
export function ended(pc) {
  return new Promise((resolve) => {
    const check = () => (pc.connectionState === "failed" || pc.connectionState === "closed") && resolve("connection lost");
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

/** Bytes received and sent by the ICE transport so far (DTLS datagrams, as the Python tap counts them). */
export async function transportBytes(pc) {
  let received = 0;
  let sent = 0;
  (await pc.getStats()).forEach((report) => {
    if (report.type === "transport") {
      received += report.bytesReceived ?? 0;
      sent += report.bytesSent ?? 0;
    }
  });
  return { received, sent };
}
