// The demo's view of the network: each person's connection-quality badge, the overlay on a video
// the server holds back, and the audio-only switch. It reads only the SDK's client.
const $ = (id) => document.getElementById(id);

/** Which way each person's connection is weak, as the last `connectionQualityChanged` said. */
const reasons = new Map();

/** A person's connection quality on their tile (`data-quality`), and one's own in the header too. */
export function renderQuality(client, id, quality, reason) {
  reasons.set(id, reason);
  const label = reason ? `${quality} · ${reason}` : (quality ?? '');
  if (id === client.localParticipant?.id) {
    $('quality').dataset.quality = quality;
    $('quality').textContent = `Your connection: ${label}`;
  }
  const el = document.querySelector(`[data-tile="${CSS.escape(id)}"]`);
  if (!el) return;
  if (quality === undefined) delete el.dataset.quality;
  else el.dataset.quality = quality;
  el.querySelector('.quality').textContent = label;
}

/** The quality the client knows of a person (one's own, or a participant's), on a tile just made. */
export function renderKnownQuality(client, id) {
  const quality =
    id === client.localParticipant?.id ? client.connectionQuality : client.participants.get(id)?.connectionQuality;
  renderQuality(client, id, quality, reasons.get(id));
}

export function tileOf(remoteTrack, participant) {
  const id = remoteTrack.source === 'screen' ? `${participant.id}:screen` : participant.id;
  return document.querySelector(`[data-tile="${CSS.escape(id)}"]`);
}

/** Over a video the server holds back from this page, why (`data-paused` on the tile: its pausedReason). */
export function renderPaused(client, el, remoteTrack) {
  if (!el || remoteTrack.kind !== 'video') return;
  const reason = remoteTrack.ended ? null : remoteTrack.pausedReason;
  const weak = reason === 'bandwidth' || client.audioOnly.reason === 'bandwidth';
  el.dataset.paused = reason ?? '';
  const text = weak ? 'video paused: weak connection' : 'video off: you chose audio only';
  el.querySelector('.paused').textContent = reason ? text : '';
}

/** The audio-only switch as the server says it is (it follows audioOnlyChanged), and why if the connection turned it on. */
export function renderAudioOnly(client) {
  const { enabled, reason } = client.audioOnly;
  $('audio-only').checked = enabled;
  $('audio-only-reason').textContent = enabled && reason === 'bandwidth' ? '(on: your connection is weak)' : '';
  for (const participant of client.participants.values())
    for (const track of participant.tracks.values()) renderPaused(client, tileOf(track, participant), track);
}
