/**
 * What the SDK's unit tests build their fake servers from: an admission's session state, and a
 * mediasoup-client producer that only records what the SDK asks of it.
 */
import type { SessionState } from '../../client-sdk/src/protocol/index.ts';

/** An admission of Pat (`p-1`) into a group with a facilitator, Dr. Lee (`f-1`). */
export function sessionStateFixture(
  routerRtpCapabilities: unknown,
  overrides: Partial<SessionState> = {},
): SessionState {
  return {
    room: { id: 'grp-1', kind: 'group', title: 'Tuesday group', e2ee: false, shareConnectionQuality: false },
    self: { id: 'p-1', name: 'Pat', role: 'participant', tracks: [] },
    capabilities: { publishAudio: true, publishVideo: true, publishScreen: false, chat: true },
    participants: [{ id: 'f-1', name: 'Dr. Lee', role: 'facilitator', tracks: [] }],
    routerRtpCapabilities,
    iceServers: [],
    resumed: false,
    reconnectGraceMs: 30_000,
    audioMode: 'open',
    locked: false,
    spotlight: null,
    hands: [],
    waiting: [],
    connectionQuality: [],
    audioOnly: { enabled: false, reason: null },
    breakout: { running: false, group: null, endsAt: null },
    breakouts: null,
    ...overrides,
  };
}

/** A producer with mediasoup-client's shape (pause, resume, close), with `extra` fields of the test's. */
export function fakeProducerFixture<T extends object>(id: string, extra: T = {} as T) {
  return {
    id,
    closed: false,
    paused: false,
    pause() {
      this.paused = true;
    },
    resume() {
      this.paused = false;
    },
    close() {
      this.closed = true;
    },
    on() {},
    ...extra,
  };
}
