/**
 * `@haven/server-sdk`: what a portal's backend (Node 20+) needs from Haven. Minting access tokens,
 * the admin API client, webhook verification.
 */
export type {
  ConsentVersion,
  Delivery,
  DeliveryPage,
  DeliveryStatus,
  HavenAdminOptions,
  Health,
  NewRoom,
  ParticipantAttendanceSummary,
  Readiness,
  Room,
  RoomEnded,
  RoomPage,
  RoomWithLive,
  SessionAttendance,
  WebhookEndpoints,
  WeeklyTotal,
} from './admin.ts';
export { HavenAdmin } from './admin.ts';
export type { ClientErrorCode, HavenErrorCode, WebhookErrorCode } from './errors.ts';
export { HavenApiError, HavenWebhookError } from './errors.ts';
export type { TokenAlgorithm } from './keys.ts';
export type { MintOptions } from './mint.ts';
export { mintAccessToken } from './mint.ts';
export type { VerifyWebhookOptions, WebhookEvent, WebhookHeaders } from './webhooks.ts';
export { signWebhook, verifyWebhook } from './webhooks.ts';
