/**
 * The `signaling` scenario's baseline: bare socket.io 4 in its own process, no Haven code, the
 * same message pattern as Haven's rooms: every request acknowledged; a hand goes to the sender and
 * the room's facilitator, a chat to the whole room, a moderation action to its target or the
 * room. It prints its port on stdout.
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const http = createServer();
const io = new Server(http, { serveClient: false, transports: ['websocket'] });
/** Who is where: participant id → socket id; room → its facilitator's socket id. */
const sockets = new Map<string, string>();
const facilitators = new Map<string, string>();

type Ack = (answer: { ok: true; data: unknown }) => void;
const ok = (ack: unknown, data: unknown = {}) => {
  if (typeof ack === 'function') (ack as Ack)({ ok: true, data });
};

let messageSeq = 0;
io.on('connection', (socket) => {
  let room = '';
  let id = '';
  socket.on('join', (req: { room: string; id: string; facilitator: boolean }, ack: unknown) => {
    room = String(req.room);
    id = String(req.id);
    sockets.set(id, socket.id);
    if (req.facilitator) facilitators.set(room, socket.id);
    socket.join(room);
    ok(ack, { stage: 'admitted' });
  });
  socket.on('hand', (req: { raised: boolean }, ack: unknown) => {
    const event = req.raised ? 'handRaised' : 'handLowered';
    const payload = { participantId: id, raisedAt: Date.now() };
    socket.emit(event, payload);
    const facilitator = facilitators.get(room);
    if (facilitator && facilitator !== socket.id) io.to(facilitator).emit(event, payload);
    ok(ack);
  });
  socket.on('chat', (req: { text: string; to: string }, ack: unknown) => {
    const messageId = `m${++messageSeq}`;
    io.to(room).emit('chatMessage', {
      id: messageId,
      from: id,
      text: String(req.text),
      to: req.to,
      sentAt: Date.now(),
    });
    ok(ack, { messageId });
  });
  socket.on('moderate', (req: { target: string; fanout: string }, ack: unknown) => {
    const target = sockets.get(String(req.target));
    if (req.fanout === 'target' && target) io.to(target).emit('unmuteRequested', { by: id });
    else if (req.fanout === 'room') io.to(room).emit('roomLocked', { locked: true });
    ok(ack);
  });
  socket.on('disconnect', () => {
    if (sockets.get(id) === socket.id) sockets.delete(id);
  });
});

http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  if (address && typeof address === 'object') process.stdout.write(`listening ${address.port}\n`);
});
