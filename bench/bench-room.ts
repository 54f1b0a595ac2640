/** Creates the bench's synthetic rooms through the node's admin API, as a clinic's portal would. */
import type { RoomKind } from '../client-sdk/src/protocol/index.ts';

export interface BenchRoom {
  id: string;
  kind: RoomKind;
  capacity: number;
  /** End-to-end encrypted; absent, the node's default (`e2ee.default`). */
  e2ee?: boolean;
}

/** Creates `room` on the node at `nodeUrl` (a waiting room and a consent text, like a real group); throws unless created. */
export async function createBenchRoom(nodeUrl: string, adminKey: string, room: BenchRoom): Promise<void> {
  const res = await fetch(`${nodeUrl}/v1/rooms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      ...room,
      title: 'Bench room',
      waitingRoom: true,
      consentText: 'This is a synthetic bench session.',
    }),
  });
  if (res.status !== 201) throw new Error(`room not created: HTTP ${res.status}`);
}
