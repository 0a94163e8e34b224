/**
 * Builds delivery frames. The envelope is serialized once per node and spliced into the frame
 * text, and the frame is then framed once for every recipient.
 */
import type { Dispatch } from './engine/broker.js';
import type { HistoryEntry } from './engine/broker.js';
import type { MessageFrame } from '../protocol/frames.js';
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

/** A message from a user's inbox, delivered at connect (always at-least-once). */
export function inboxMessageFrameBytes(envelopeJson: string, channel: string | undefined): Buffer {
  const where = channel ? `,"channel":${JSON.stringify(channel)}` : '';
  return encodeTextFrame(`{"type":"message","target":"user"${where},"ack":true,"inbox":true,"message":${envelopeJson}}`);
}
