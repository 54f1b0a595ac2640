/** The admin API's inputs: its bodies, query strings and path params. */
import { z } from 'zod';
import { idPattern, maxIdLength } from '../../client-sdk/src/protocol/index.ts';
import { deliveryStatuses } from '../webhooks/deliveries.ts';
import { idParam, timeZone } from './validation.ts';

const consentText = z.string().trim().min(1).max(20_000);

export const createRoomSchema = z.strictObject({
  id: z.string().regex(idPattern, `letters, digits and . _ : - only, at most ${maxIdLength}`).optional(),
  kind: z.enum(['group', 'individual', 'education']).default('group'),
  title: z.string().trim().min(1).max(200),
  capacity: z.number().int().min(1).max(500).optional(),
  schedule: z
    .strictObject({
      start: z.iso.datetime({ offset: true }),
      end: z.iso.datetime({ offset: true }),
      timeZone,
    })
    .refine((s) => Date.parse(s.start) < Date.parse(s.end), 'end must be after start')
    .optional(),
  roster: z.array(z.string().regex(idPattern)).max(500).optional(),
  waitingRoom: z.boolean().optional(),
  observersVisible: z.boolean().optional(),
  privateChat: z.boolean().optional(),
  keepChat: z.boolean().optional(),
  e2ee: z.boolean().optional(),
  shareConnectionQuality: z.boolean().optional(),
  consentText: consentText.optional(),
});

export const consentSchema = z.strictObject({ text: consentText });

/** `/v1/rooms/:id…` and `/v1/participants/:id…`. */
export const idParams = z.object({ id: idParam });

export const participantQuery = z.strictObject({
  from: z.iso.datetime({ offset: true }),
  to: z.iso.datetime({ offset: true }),
  timeZone: timeZone.optional(),
});

const pageQuery = {
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.coerce.number().int().min(0).default(0),
};

export const listQuery = z.strictObject(pageQuery);

export const deliveriesQuery = z.strictObject({
  status: z.enum(deliveryStatuses).optional(),
  ...pageQuery,
});
