// Haven's demo app: join a room from the browser, see and hear the others. It uses only the
// public SDK (what a portal developer would write); the token comes from the development-only
// /demo/token endpoint instead of the clinic's backend. A reload within the reconnection grace
// window rejoins with the same token (kept in sessionStorage), so the others see no leave.
import { SessionClient } from '/demo/haven-sdk.js';

const $ = (id) => document.getElementById(id);
const saved = 'haven-demo-session';

/** Exposed for people poking around in the console (and for the browser tests). */
const demo = { client: undefined, timings: {} };
window.havenDemo = demo;

async function mintToken(room, name, role) {
  const res = await fetch('/demo/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room, name, role }),
  });
  const body = await res.json();
  if (!body.ok) throw new Error(body.error.message);
  return body.data.token;
}

function tile(id, label) {
  let el = document.querySelector(`[data-tile="${CSS.escape(id)}"]`);
  if (!el) {
    el = document.createElement('figure');
    el.className = 'tile';
    el.dataset.tile = id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    const name = document.createElement('figcaption');
    name.className = 'name';
    el.append(video, name);
    $('tiles').append(el);
  }
  el.querySelector('.name').textContent = label;
  return el;
}

function attach(remoteTrack, participant) {
  const id = remoteTrack.source === 'screen' ? `${participant.id}:screen` : participant.id;
  const el = tile(id, remoteTrack.source === 'screen' ? `${participant.name} (screen)` : participant.name);
  if (remoteTrack.kind === 'audio') {
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.dataset.producer = remoteTrack.producerId;
    audio.srcObject = new MediaStream([remoteTrack.track]);
    el.append(audio);
    return;
  }
  const video = el.querySelector('video');
  video.dataset.producer = remoteTrack.producerId;
  video.srcObject = new MediaStream([remoteTrack.track]);
  video.requestVideoFrameCallback?.(() => {
    demo.timings.firstRemoteFrameMs ??= Math.round(performance.now() - demo.timings.startedAt);
    showTimings();
  });
  // Ask for the simulcast layer that fits the tile, and again when it changes size.
  new ResizeObserver(() => remoteTrack.setPreferredSize(video.clientWidth, video.clientHeight).catch(() => {})).observe(
    video,
  );
}

function detach(remoteTrack, participant) {
  for (const el of document.querySelectorAll(`[data-producer="${CSS.escape(remoteTrack.producerId)}"]`)) {
    if (el.tagName === 'AUDIO') el.remove();
    else el.srcObject = null;
  }
  if (remoteTrack.source === 'screen')
    document.querySelector(`[data-tile="${CSS.escape(`${participant.id}:screen`)}"]`)?.remove();
}

function showTimings() {
  const { joinedMs, firstRemoteFrameMs } = demo.timings;
  const parts = [];
  if (joinedMs !== undefined) parts.push(`joined in ${joinedMs} ms`);
  if (firstRemoteFrameMs !== undefined) parts.push(`first remote video after ${firstRemoteFrameMs} ms`);
  $('timings').textContent = parts.join(' · ');
}

function end(message) {
  sessionStorage.removeItem(saved);
  $('session').hidden = true;
  $('ended').hidden = false;
  $('ended').textContent = message;
}

async function join({ room, name, role, token }) {
  demo.timings = { startedAt: performance.now() };
  const accessToken = token ?? (await mintToken(room, name, role));
  sessionStorage.setItem(saved, JSON.stringify({ room, name, role, token: accessToken }));
  const client = new SessionClient({ url: location.origin, token: accessToken });
  demo.client = client;
  client.on('connectionStateChanged', (state) => {
    $('state').textContent = state;
  });
  client.on('participantJoined', (p) => tile(p.id, p.name));
  client.on('participantLeft', (p) => {
    for (const el of document.querySelectorAll(`[data-tile^="${CSS.escape(p.id)}"]`)) el.remove();
  });
  client.on('trackSubscribed', attach);
  client.on('trackUnsubscribed', detach);
  client.on('activeSpeakerChanged', (id) => {
    for (const el of document.querySelectorAll('.tile')) el.classList.toggle('speaking', el.dataset.tile === id);
  });
  client.on('sessionEnded', () => end('The session has ended. Thank you for joining.'));
  client.on('closed', (reason) => {
    if (reason !== 'sessionEnded') end(`You have left the session (${reason}).`);
  });
  client.on('error', (err) => console.warn('haven:', err));

  await client.connect();
  await client.join();
  demo.timings.joinedMs = Math.round(performance.now() - demo.timings.startedAt);
  showTimings();
  $('join-form').hidden = true;
  $('session').hidden = false;

  const self = client.localParticipant;
  const own = tile(self.id, `${self.name} (you)`);
  const caps = self.capabilities;
  if (caps.publishAudio) await client.publishMicrophone();
  if (caps.publishVideo) {
    const camera = await client.publishCamera();
    own.querySelector('video').srcObject = new MediaStream([camera.track]);
  }
  $('mic').hidden = !caps.publishAudio;
  $('camera').hidden = !caps.publishVideo;
  $('screen').hidden = !caps.publishScreen;
}

function toggle(button, onLabel, offLabel, apply) {
  button.addEventListener('click', async () => {
    const off = button.getAttribute('aria-pressed') !== 'true';
    await apply(!off);
    button.setAttribute('aria-pressed', String(off));
    button.textContent = off ? offLabel : onLabel;
  });
}

toggle($('mic'), 'Mute', 'Unmute', (enabled) => demo.client.setMicrophoneEnabled(enabled));
toggle($('camera'), 'Camera off', 'Camera on', (enabled) => demo.client.setCameraEnabled(enabled));
$('screen').addEventListener('click', () => demo.client.publishScreen().catch((err) => console.warn(err)));
$('leave').addEventListener('click', () => demo.client.leave());

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  join(Object.fromEntries(form)).catch((err) => {
    $('join-error').textContent = err.message;
  });
});

// Rejoin after a reload (same token: the server gives the place back), or join from a link
// such as /demo?room=tuesday&name=Alex&role=participant&auto=1.
const params = new URLSearchParams(location.search);
const previous = sessionStorage.getItem(saved);
if (previous) {
  join(JSON.parse(previous)).catch((err) => {
    sessionStorage.removeItem(saved);
    $('join-error').textContent = err.message;
  });
} else if (params.get('auto') === '1') {
  join({ room: params.get('room'), name: params.get('name'), role: params.get('role') ?? 'participant' }).catch(
    (err) => {
      $('join-error').textContent = err.message;
    },
  );
}
