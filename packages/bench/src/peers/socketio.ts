/**
 * Peer: Socket.IO 4 with the websocket transport only. A client connects with `auth: {token}`
 * (checked like Herald's connect frame), emits `subscribe` with a channel and an ack callback, and
 * receives each publication as a `message` event carrying Herald's delivery frame; the publication
 * goes out with a room broadcast (`io.to(channel).emit`), which encodes it once. A user publish
 * goes to the user's room, which every socket joins on connection.
 *
 *   node packages/bench/dist/peers/socketio.js --port 9003
 */
import { Server } from 'socket.io';
import { deliveryFrame, listen, peerOptions, publishServer, verifyToken } from './common.js';

const options = peerOptions();
/** Each socket joins its user's room on connection, so a user publish is a room broadcast too. */
const userRoom = (user: string): string => `\u0000user:${user}`;
const server = publishServer(options, (p) => {
  const frame = deliveryFrame(p);
  if (p.user !== undefined) io.to(userRoom(p.user)).emit('message', frame);
  else if (p.channel === undefined) io.emit('message', frame);
  else io.to(p.channel).emit('message', frame);
});

const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  pingInterval: 25_000,
  pingTimeout: 20_000,
  maxHttpBufferSize: 64 * 1024,
  cors: { origin: '*' },
});

io.use((socket, next) => {
  const auth = socket.handshake.auth as { token?: unknown };
  void verifyToken(auth.token, options.secret).then((user) => {
    if (user instanceof Error) return next(new Error('unauthorized'));
    socket.data = { user };
    next();
  });
});

io.on('connection', (socket) => {
  void socket.join(userRoom((socket.data as { user: string }).user));
  socket.on('subscribe', (channel: unknown, ack?: unknown) => {
    const reply = typeof ack === 'function' ? (ack as (body: unknown) => void) : () => {};
    if (typeof channel !== 'string' || channel.length === 0) {
      reply({ type: 'error', error: { code: 'invalid_channel', message: 'bad channel', temporary: false } });
      return;
    }
    void socket.join(channel);
    reply({ type: 'subscribed', channel, position: { offset: 0, epoch: '' } });
  });
  socket.on('unsubscribe', (channel: unknown, ack?: unknown) => {
    if (typeof channel === 'string') void socket.leave(channel);
    if (typeof ack === 'function') (ack as (body: unknown) => void)({ type: 'unsubscribed', channel });
  });
});

listen(server, options, 'socketio', () => void io.close());
