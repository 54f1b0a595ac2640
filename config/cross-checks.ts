/** The checks of settings that only make sense together (or never together), after each key's own. */
import type { z } from 'zod';
import type { configShape } from './schema.ts';

export function checkSettingsTogether(config: z.output<typeof configShape>, ctx: z.RefinementCtx): void {
  const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  const sentinels = (config.redis.sentinels?.length ?? 0) > 0;
  if (config.redis.url && sentinels) {
    issue(['redis', 'sentinels'], 'set redis.url (one Redis) or redis.sentinels (a Sentinel set), not both');
  }
  for (const key of ['password', 'sentinelPassword'] as const) {
    if (config.redis[key] !== undefined && !sentinels) {
      issue(
        ['redis', key],
        `redis.${key} is for a Sentinel set (redis.sentinels); with redis.url, put the password in the URL`,
      );
    }
  }
  if (config.env === 'production' && !config.auth.secret && !config.auth.publicKeyFile) {
    issue(['auth', 'secret'], 'production needs auth.secret or auth.publicKeyFile to verify access tokens');
  }
  if (config.auth.secret && config.auth.publicKeyFile) {
    issue(['auth', 'publicKeyFile'], 'set auth.secret or auth.publicKeyFile, not both');
  }
  if (config.env === 'production' && !config.audit.hmacKey && !config.audit.hmacKeyFile) {
    issue(['audit', 'hmacKey'], 'production needs audit.hmacKey or audit.hmacKeyFile (a key Redis never holds)');
  }
  if (config.audit.hmacKey && config.audit.hmacKeyFile) {
    issue(['audit', 'hmacKeyFile'], 'set audit.hmacKey or audit.hmacKeyFile, not both');
  }
  if (config.webhooks.urls.length > 0 && !config.webhooks.secret) {
    issue(['webhooks', 'secret'], 'webhooks.urls needs webhooks.secret to sign');
  }
  if (config.turn.urls.length > 0 && !config.turn.secret) {
    issue(['turn', 'secret'], 'turn.urls needs turn.secret to derive credentials');
  }
  if (config.media.rtcMinPort > config.media.rtcMaxPort) {
    issue(['media', 'rtcMinPort'], `must not be above media.rtcMaxPort (${config.media.rtcMaxPort})`);
  }
}
