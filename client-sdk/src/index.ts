/**
 * Haven's browser SDK: `SessionClient` joins a session (through the consent gate and the waiting
 * room), publishes the microphone, camera and screen, receives everyone else's tracks, and gives
 * facilitators their controls and live attendance (`client.moderation`), and encrypts media and
 * chat end to end in rooms created with `e2ee` (`client.e2ee`). The wire protocol's
 * types are re-exported for apps that want them (e.g. `TrackSource`, `ErrorCode`).
 */

export { LiveAttendance, LiveAttendanceEntry } from './attendance.ts';
export type { ReconnectContext, ReconnectOptions, ReconnectPolicy } from './connection/reconnect-policy.ts';
export { BackoffReconnectPolicy, backoffDelay } from './connection/reconnect-policy.ts';
export { E2ee } from './e2ee/e2ee.ts';
export type { E2eeStats } from './e2ee/e2ee-stats.ts';
export type { E2eeEvents, E2eeState } from './e2ee/key-exchange.ts';
export { isE2eeSupported } from './e2ee/support.ts';
export type { ClientErrorCode } from './errors.ts';
export { HavenRequestError, InvalidStateError } from './errors.ts';
export type { ModerationRequestSender, RemoveOptions } from './moderation.ts';
export { Moderation } from './moderation.ts';
export type { IceTransportPolicy, MediaHandlerName, SessionClientOptions } from './options.ts';
export { LocalTrack } from './participants/local-track.ts';
export { LocalParticipant, RemoteParticipant } from './participants/participant.ts';
export { RemoteTrack } from './participants/remote-track.ts';
export * from './protocol/index.ts';
export type { EncodingPreset } from './publish-presets.ts';
export { cameraEncodings } from './publish-presets.ts';
export { SessionClient } from './session-client.ts';
export type {
  CloseReason,
  ConnectionState,
  ReceivedBroadcast,
  ReceivedChatMessage,
  SessionClientEvents,
} from './session-events.ts';
