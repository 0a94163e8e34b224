/**
 * Builds delivery frames. The envelope is serialized once per node and spliced into the frame
 * text, and the frame is then framed once for every recipient.
 */
import type { Dispatch, HistoryEntry, HistoryResult } from './engine/broker.js';
import type { MessageFrame, SubscribedFrame, SubscribeFrame } from '@herald/protocol';
import { encodeTextFrame } from './transport/ws-frame.js';

export function messageFrameText(dispatch: Dispatch, envelopeJson: string): string {
  const t = dispatch.target;
  const ack = dispatch.reliable ? ',"ack":true' : '';
  if (t.kind === 'channel') {
    const pos = dispatch.position;
    const where = pos ? `,"offset":${pos.offset},"epoch":${JSON.stringify(pos.epoch)}` : '';
    return `{"type":"message","target":"channel","channel":${JSON.stringify(t.channel)}${where}${ack},"message":${envelopeJson}}`;
  }
  const target = t.kind === 'user' ? 'user' : dispatch.filter ? 'filter' : 'broadcast';
  return `{"type":"message","target":"${target}"${ack},"message":${envelopeJson}}`;
}

export function messageFrameBytes(dispatch: Dispatch, envelopeJson: string): Buffer {
  return encodeTextFrame(messageFrameText(dispatch, envelopeJson));
}

export function historyMessageFrame(channel: string, epoch: string, entry: HistoryEntry): MessageFrame {
  return { type: 'message', target: 'channel', channel, offset: entry.offset, epoch, message: entry.envelope };
}

/**
 * The `subscribed` reply. A recovery replay must fit in `room`, what the connection's byte budget
 * allows it (`Session.replayRoomBytes`): one that does not is answered like one history cannot
 * serve — `recovered: false`, no publications — and the client reloads its state. Publications are
 * encoded one at a time and the work stops once `room` is passed, so asking for a large replay
 * costs the server no more than the budget.
 */
export function subscribedReply(frame: SubscribeFrame, history: HistoryResult, room: number): Buffer {
  const head: SubscribedFrame = { type: 'subscribed', id: frame.id, channel: frame.channel, position: history.position };
  if (!frame.recover) return encodeTextFrame(JSON.stringify(head));
  const epoch = history.position.epoch;
  const parts: string[] = [];
  // The reply without publications, plus the largest frame header.
  let bytes = JSON.stringify(head).length + 64;
  for (const entry of history.entries) {
    const text = JSON.stringify(historyMessageFrame(frame.channel, epoch, entry));
    bytes += Buffer.byteLength(text) + 1;
    if (bytes > room) return encodeTextFrame(JSON.stringify({ ...head, recovered: false, publications: [] }));
    parts.push(text);
  }
  const empty = JSON.stringify({ ...head, recovered: history.complete, publications: [] });
  return encodeTextFrame(`${empty.slice(0, -2)}${parts.join(',')}]}`);
}

/** A message from a user's inbox, delivered at connect (always at-least-once). */
export function inboxMessageFrameBytes(envelopeJson: string, channel: string | undefined): Buffer {
  const where = channel ? `,"channel":${JSON.stringify(channel)}` : '';
  return encodeTextFrame(`{"type":"message","target":"user"${where},"ack":true,"inbox":true,"message":${envelopeJson}}`);
}
