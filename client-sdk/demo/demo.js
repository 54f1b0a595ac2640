// Haven's demo app: join a room from the browser, see and hear the others. It uses only the
// public SDK (what a portal developer would write); the token comes from the development-only
// /demo/token endpoint instead of the clinic's backend. A reload within the reconnection grace
// window rejoins with the same token (kept in sessionStorage), so the others see no leave.
import { breakoutNameOf, setupBreakouts, wireBreakoutsPanel } from '/demo/demo-breakouts.js';
import { renderAudioOnly, renderKnownQuality, renderPaused, renderQuality, tileOf } from '/demo/demo-network.js';
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
    const quality = Object.assign(document.createElement('span'), { className: 'quality' });
    const paused = Object.assign(document.createElement('p'), { className: 'paused' });
    el.append(video, paused, name, quality);
    if (
      demo.client?.localParticipant?.role === 'facilitator' &&
      id !== demo.client.localParticipant.id &&
      !id.includes(':')
    ) {
      el.append(moderationButtons(id));
    }
    $('tiles').append(el);
    if (!id.includes(':')) renderKnownQuality(demo.client, id);
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
  renderPaused(demo.client, el, remoteTrack);
  video.requestVideoFrameCallback?.(() => {
    demo.timings.firstRemoteFrameMs ??= Math.round(performance.now() - demo.timings.startedAt);
    showTimings();
  });
  // Ask for the simulcast layer that fits the tile, and again when it changes size.
  new ResizeObserver(() => remoteTrack.setPreferredSize(video.clientWidth, video.clientHeight).catch(() => {})).observe(
    video,
  );
}

/** A facilitator's buttons on someone's tile; the server enforces who may use them. */
function moderationButtons(participantId) {
  const actions = document.createElement('div');
  actions.className = 'actions';
  for (const [label, run] of [
    ['Mute', () => demo.client.moderation.mute(participantId)],
    ['Camera off', () => demo.client.moderation.disableCamera(participantId)],
    ['Suggest audio only', () => demo.client.moderation.suggestAudioOnly(participantId)],
    ['To waiting room', () => demo.client.moderation.moveToWaitingRoom(participantId)],
    ['Remove', () => demo.client.moderation.remove(participantId)],
  ]) {
    actions.append(button(label, run));
  }
  return actions;
}

function button(label, run) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', () => run().catch((err) => notice(err.message)));
  return b;
}

function notice(text) {
  $('notice').textContent = text;
}

function showOnly(id) {
  for (const section of ['join-form', 'consent', 'waiting', 'session']) $(section).hidden = section !== id;
}

function renderWaiting(list) {
  $('waiting-list').replaceChildren(
    ...list.map((entry) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      const minutes = Math.max(0, Math.round((Date.now() - entry.waitingSince) / 60_000));
      name.textContent = `${entry.name} · ${minutes} min`;
      li.append(
        name,
        button('Admit', () => demo.client.moderation.admit(entry.participantId)),
        button('Deny', () => demo.client.moderation.deny(entry.participantId, 'Please contact your clinic.')),
      );
      return li;
    }),
  );
}

function nameOf(id) {
  if (id === demo.client.localParticipant?.id) return 'You';
  return demo.client.participants.get(id)?.name ?? breakoutNameOf(demo.client, id) ?? id;
}

function renderHands() {
  const isFacilitator = demo.client.localParticipant?.role === 'facilitator';
  $('hands').replaceChildren(
    ...demo.client.hands.map((hand) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.textContent = nameOf(hand.participantId);
      li.append(name);
      if (isFacilitator) li.append(button('Lower', () => demo.client.moderation.lowerHand(hand.participantId)));
      return li;
    }),
  );
  for (const el of document.querySelectorAll('.tile')) {
    const raised = demo.client.hands.some((h) => h.participantId === el.dataset.tile);
    let mark = el.querySelector('.hand');
    if (raised && !mark) {
      mark = document.createElement('span');
      mark.className = 'hand';
      mark.textContent = 'Hand raised';
      el.append(mark);
    } else if (!raised) mark?.remove();
  }
}

/** Facilitators: present first (longest first), then absent; minutes tick locally between updates. */
function renderAttendance() {
  const view = demo.client?.moderation.attendance;
  if (!view) return;
  const now = Date.now();
  const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  $('attendance').replaceChildren(
    ...[...view.present, ...view.absent].map((entry) => {
      const li = document.createElement('li');
      li.dataset.attendance = entry.participantId;
      li.classList.toggle('absent', !entry.present);
      const name =
        entry.participantId === demo.client.localParticipant?.id ? 'You' : (entry.name ?? entry.participantId);
      const where = entry.present ? `since ${time(entry.presentSince)}` : 'absent';
      const text = document.createElement('span');
      text.textContent = `${name} · ${where} · ${entry.minutesSoFar(now)} min${entry.reconnecting ? ' · reconnecting' : ''}`;
      li.append(text);
      return li;
    }),
  );
}

function addMessage(message) {
  const li = document.createElement('li');
  li.dataset.message = message.id;
  const text = document.createElement('span');
  const to =
    message.to === 'everyone' ? '' : ` → ${message.to === 'facilitators' ? 'facilitators' : nameOf(message.to)}`;
  const body = message.undecryptable ? '(a message encrypted with a key this page never had)' : message.text;
  text.textContent = `${nameOf(message.from)}${to}: ${body}`;
  li.append(text);
  if (demo.client.localParticipant?.role === 'facilitator') {
    li.append(button('Delete', () => demo.client.moderation.deleteChatMessage(message.id)));
  }
  $('messages').append(li);
}

function detach(remoteTrack, participant) {
  if (remoteTrack.kind === 'video') renderPaused(demo.client, tileOf(remoteTrack, participant), remoteTrack);
  for (const el of document.querySelectorAll(`[data-producer="${CSS.escape(remoteTrack.producerId)}"]`)) {
    if (el.tagName === 'AUDIO') el.remove();
    else el.srcObject = null;
  }
  if (remoteTrack.source === 'screen') tileOf(remoteTrack, participant)?.remove();
}

function showTimings() {
  const { joinedMs, firstRemoteFrameMs } = demo.timings;
  const parts = [];
  if (joinedMs !== undefined) parts.push(`joined in ${joinedMs} ms`);
  if (firstRemoteFrameMs !== undefined) parts.push(`first remote video after ${firstRemoteFrameMs} ms`);
  $('timings').textContent = parts.join(' · ');
}

/**
 * The lock state of an end-to-end encrypted room, and its security code: everyone reads the code
 * aloud and it must match, else someone in the key exchange should not be there.
 */
function renderE2ee() {
  const { e2ee } = demo.client;
  const badge = $('e2ee');
  badge.hidden = !e2ee.enabled;
  if (!e2ee.enabled) return;
  badge.dataset.state = e2ee.state;
  badge.textContent =
    e2ee.state === 'active'
      ? `🔒 End-to-end encrypted · security code ${e2ee.securityCode ?? '…'} · ${e2ee.memberCount} with the key`
      : '🔓 Waiting for the encryption key…';
  badge.title = `Key epoch ${e2ee.epoch ?? '–'}. Compare the security code aloud: it is the same for everyone only if nobody else holds the key.`;
}

function end(message) {
  sessionStorage.removeItem(saved);
  showOnly('ended');
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
  client.on('trackUpdated', (track, participant) => renderPaused(client, tileOf(track, participant), track));
  client.on('connectionQualityChanged', (id, quality, reason) => renderQuality(client, id, quality, reason));
  client.on('audioOnlyChanged', () => renderAudioOnly(client));
  client.on('audioOnlySuggested', ({ by }) =>
    $('notice').replaceChildren(
      `${nameOf(by)} suggests audio only: your connection struggles with video. `,
      button('Switch to audio only', () => client.setAudioOnly(true).then(() => notice(''))),
    ),
  );
  client.on('activeSpeakerChanged', (id) => {
    for (const el of document.querySelectorAll('.tile')) el.classList.toggle('speaking', el.dataset.tile === id);
  });
  client.on('sessionEnded', () => end('The session has ended. Thank you for joining.'));
  client.on('closed', (reason) => {
    // Ended, removed and denied have their own message already.
    if (!['sessionEnded', 'removed', 'denied'].includes(reason)) end(`You have left the session (${reason}).`);
  });
  client.on('error', (err) => console.warn('haven:', err));
  setupBreakouts(client, { button, notice, nameOf });
  client.on('consentRequired', (consent) => {
    $('consent-text').textContent = consent.text;
    showOnly('consent');
  });
  client.on('waiting', (info) => {
    $('waiting-status').textContent =
      info.reason === 'sessionFull'
        ? 'The session is full right now. You will be let in when a place frees up.'
        : info.facilitatorPresent
          ? 'A facilitator will let you in shortly.'
          : 'No facilitator has arrived yet. You will be let in when the session starts.';
    $('waiting-message').textContent = info.message ?? '';
    showOnly('waiting');
  });
  client.on('admitted', () => showOnly('session'));
  client.on('denied', (reason) => end(`You were not admitted${reason ? `: ${reason}` : '.'}`));
  client.on('removed', () => end('A facilitator removed you from the session.'));
  client.on('mutedByFacilitator', (source) => notice(`A facilitator turned off your ${source}.`));
  client.on('unmuteRequested', () => {
    $('notice').replaceChildren(
      'A facilitator asks you to unmute. ',
      button('Unmute', async () => {
        await client.setMicrophoneEnabled(true);
        notice('');
      }),
    );
  });
  client.on('roomLocked', (locked) => {
    $('lock').textContent = locked ? 'Unlock room' : 'Lock room';
    notice(locked ? 'The room is locked: nobody new can join.' : '');
  });
  client.on('waitingRoomChanged', renderWaiting);
  client.on('attendanceUpdated', renderAttendance);
  client.on('handRaised', renderHands);
  client.on('handLowered', renderHands);
  client.on('chatMessage', addMessage);
  client.on('chatMessageDeleted', (id) => document.querySelector(`[data-message="${CSS.escape(id)}"]`)?.remove());
  for (const event of ['stateChanged', 'epochChanged', 'securityCodeChanged']) client.e2ee.on(event, renderE2ee);
  client.on('displayNameChanged', (id, name) => {
    const label = document.querySelector(`[data-tile="${CSS.escape(id)}"] .name`);
    if (label) label.textContent = name;
  });

  await client.connect();
  await client.join();
  demo.timings.joinedMs = Math.round(performance.now() - demo.timings.startedAt);
  showTimings();
  showOnly('session');
  renderE2ee();
  if (client.localParticipant.role === 'facilitator') {
    $('console').hidden = false;
    renderWaiting(client.moderation.waiting);
    client.moderation.liveAttendance().catch((err) => notice(err.message));
    setInterval(renderAttendance, 1_000);
  }
  renderHands();

  const self = client.localParticipant;
  const own = tile(self.id, `${self.name} (you)`);
  $('quality').hidden = false;
  renderKnownQuality(client, self.id);
  renderAudioOnly(client);
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
$('audio-only').addEventListener('change', (event) => {
  demo.client.setAudioOnly(event.target.checked).catch((err) => {
    notice(err.message);
    renderAudioOnly(demo.client);
  });
});
$('consent-accept').addEventListener('click', () => demo.client.acceptConsent().catch((err) => notice(err.message)));
$('hand').addEventListener('click', () => {
  const raised = demo.client.hands.some((h) => h.participantId === demo.client.localParticipant.id);
  (raised ? demo.client.lowerHand() : demo.client.raiseHand()).catch((err) => notice(err.message));
});
wireBreakoutsPanel();
$('admit-all').addEventListener('click', () => demo.client.moderation.admitAll().catch((err) => notice(err.message)));
$('mute-all').addEventListener('click', () => demo.client.moderation.muteAll().catch((err) => notice(err.message)));
$('lock').addEventListener('click', () =>
  demo.client.moderation.lockRoom(!demo.client.locked).catch((err) => notice(err.message)),
);
$('end').addEventListener('click', () => demo.client.moderation.endSession().catch((err) => notice(err.message)));
$('waiting-note').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = new FormData(event.target).get('text');
  if (text) demo.client.moderation.messageWaitingRoom(text).catch((err) => notice(err.message));
  event.target.reset();
});
$('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  demo.client.sendChat(form.get('text'), form.get('to')).catch((err) => notice(err.message));
  event.target.reset();
});

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
