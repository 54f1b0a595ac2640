/** The decoders of what Haven keeps in Redis (and of audit checkpoints): what they accept, what they say otherwise. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type AttendanceEvent, attendanceEventOf, attendanceFields } from '../../server/attendance/event.ts';
import { parseAnchor } from '../../server/audit/anchor.ts';
import { parseCheckpoint } from '../../server/audit/checkpoint.ts';
import { type AuditEntry, fromFields, toFields } from '../../server/audit/entry.ts';

const sha = 'a'.repeat(64);

test('an attendance event round-trips through its stream fields', () => {
  const event: AttendanceEvent = {
    id: '1700000000000-2',
    room: 'r1',
    type: 'admitted',
    at: 1_700_000_000_000,
    participant: 'p1',
    details: { role: 'participant', attempt: 2, late: true },
  };
  assert.equal(attendanceEventOf('r1', event.id, attendanceFields(event)), event);
  const session: AttendanceEvent = { id: '5-0', room: 'r1', type: 'sessionStarted', at: 5 };
  assert.equal(attendanceEventOf('r1', '5-0', attendanceFields(session)), session);
});

test('a malformed attendance entry is refused, naming the entry and the field, not its contents', () => {
  const refused = (fields: string[]) => {
    try {
      attendanceEventOf('r1', '9-0', fields);
    } catch (err) {
      return (err as Error).message;
    }
    return 'accepted';
  };
  assert.is(refused(['type', 'teleported', 'at', '9']), 'attendance stream of room r1, id 9-0: malformed type');
  assert.is(refused(['type', 'left', 'at', 'soon']), 'attendance stream of room r1, id 9-0: malformed at');
  assert.is(
    refused(['type', 'left', 'at', '9', 'details', '{"x":']),
    'attendance stream of room r1, id 9-0: malformed details',
  );
  assert.is(
    refused(['type', 'left', 'at', '9', 'details', '{"x":{}}']),
    'attendance stream of room r1, id 9-0: malformed details.x',
  );
});

test('an audit entry round-trips through its fields; a malformed one says what is wrong, missing fields first', () => {
  const entry: AuditEntry = {
    seq: 3,
    at: '2026-12-01T10:00:00.000Z',
    room: 'r1',
    actor: 'f1',
    action: 'mute',
    result: 'ok',
    prev: sha,
    hash: sha,
    target: 'p1',
    details: { source: 'mic' },
    kid: 'k1',
    mac: sha,
  };
  assert.equal(fromFields(toFields(entry)), entry);
  assert.is(
    JSON.stringify(fromFields(toFields(entry))),
    JSON.stringify(entry),
    'fields in the order `haven audit show` prints them',
  );
  const fields = toFields(entry);
  const without = (name: string) => fields.filter((_, i) => fields[i - (i % 2)] !== name);
  const replaced = (name: string, value: string) =>
    fields.map((f, i) => (i % 2 === 1 && fields[i - 1] === name ? value : f));
  assert.is(fromFields(without('prev')), 'malformed entry: no prev');
  assert.is(fromFields(without('hash').map((f) => (f === '3' ? 'x' : f))), 'malformed entry: no hash');
  assert.is(fromFields(replaced('seq', '3.5')), 'malformed entry: seq is not a number');
  assert.is(fromFields(replaced('details', '[1]')), 'malformed entry: details are not a JSON object');
  assert.is(fromFields(replaced('details', 'nope')), 'malformed entry: details are not a JSON object');
});

test('a retention anchor: none, one, or what is wrong with it', () => {
  assert.is(parseAnchor({}), undefined);
  assert.equal(parseAnchor({ seq: '4', hash: sha, at: 'x', trimmed: '4', kid: 'k', mac: 'm' }), {
    seq: 4,
    hash: sha,
    at: 'x',
    trimmed: 4,
    kid: 'k',
    mac: 'm',
  });
  assert.equal(parseAnchor({ seq: '4', hash: sha, trimmed: '4' }), { seq: 4, hash: sha, at: '', trimmed: 4 });
  assert.is(parseAnchor({ seq: '4', hash: 'x' }), 'retention anchor malformed: seq or trimmed is not a number');
  assert.is(parseAnchor({ seq: '4', trimmed: '4', hash: 'x' }), 'retention anchor malformed: hash is not a SHA-256');
});

test('a checkpoint from itself, a log line or a webhook body; otherwise the first thing wrong', () => {
  const cp = { room: 'r1', seq: 2, hash: sha, at: '2026-12-01T10:00:00.000Z', kid: 'k1', signature: 'sig' };
  assert.equal(parseCheckpoint(cp), cp);
  assert.equal(parseCheckpoint({ level: 30, checkpoint: cp }), cp);
  const { room, ...data } = cp;
  assert.equal(parseCheckpoint({ type: 'audit.checkpoint', room, data }), cp);
  assert.is(parseCheckpoint('x'), 'not a JSON object');
  assert.is(parseCheckpoint({ ...cp, room: 'a b' }), 'no room');
  assert.is(parseCheckpoint({ ...cp, seq: 0, hash: 'x' }), 'seq is not a whole number ≥ 1');
  assert.is(parseCheckpoint({ ...cp, hash: 'x' }), 'hash is not a SHA-256');
  assert.is(parseCheckpoint({ ...cp, at: 'never' }), 'at is not a time');
  assert.is(parseCheckpoint({ ...cp, signature: undefined }), 'no kid or signature');
});

test.run();
