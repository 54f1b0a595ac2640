/**
 * Debian's Chromium as the bench and the tests drive it (playwright-core): where it is, the
 * flags for headless WebRTC with a fake camera and microphone, and an init script that keeps a
 * page's peer connections so that their stats can be read.
 */
export const chromiumPath = '/usr/bin/chromium';

/** Headless WebRTC on loopback, fake devices allowed without a prompt, nothing fetched from outside. */
export const webrtcChromiumArgs: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

/**
 * An init script for pages: keeps every RTCPeerConnection the page makes in
 * `window.peerConnections`, so that their stats can be read.
 */
export const recordPeerConnections = () => {
  const Original = window.RTCPeerConnection;
  const all: RTCPeerConnection[] = [];
  (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections = all;
  window.RTCPeerConnection = class extends Original {
    constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
      super(...args);
      all.push(this);
    }
  } as typeof RTCPeerConnection;
};
