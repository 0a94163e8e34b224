/**
 * The NATS helper module against a real server: "that message is not there" is told apart from
 * every other failure the same way for a stream get, a direct get and a delete — and a missing
 * stream is never read as an empty subject (the copies this module replaced disagreed on both).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteMessage, ensureStream, isNotFound, lastMessage, nextMessage, openJetStream, type JetStreamLink } from '../../src/engine/nats/jetstream.js';
import { NATS_URL, requireNats, uniquePrefix } from './services.js';

const natsUp = await requireNats();

describe.skipIf(!natsUp)('NATS helper module (jetstream.ts)', () => {
  const stream = uniquePrefix('herald_test_js_');
  let link: JetStreamLink;

  beforeAll(async () => {
    link = await openJetStream({ servers: [NATS_URL], requestTimeoutMs: 2000 }, 'herald:test:jetstream');
    await ensureStream(link.jsm, { name: stream, subjects: [`${stream}.>`], allow_direct: true }, () => undefined);
    for (const d of ['a', 'b', 'c']) await link.js.publish(`${stream}.x`, d);
  });
  afterAll(async () => {
    await link.jsm.streams.delete(stream).catch(() => undefined);
    await link.nc.close();
  });

  it('a subject with no message reads as undefined, by stream get and by direct get', async () => {
    expect(await lastMessage(link, stream, `${stream}.empty`)).toBeUndefined();
    expect(await nextMessage(link, stream, `${stream}.empty`)).toBeUndefined();
    expect((await lastMessage(link, stream, `${stream}.x`))?.seq).toBe(3);
    expect((await nextMessage(link, stream, `${stream}.x`, 2))?.seq).toBe(2);
  });

  it('a delete of a message already gone is false, inside the range and at its ends', async () => {
    expect(await deleteMessage(link, stream, 2)).toBe(true);
    expect(await deleteMessage(link, stream, 2)).toBe(false); // inside the range: "sequence not found"
    expect(await deleteMessage(link, stream, 1)).toBe(true);
    expect(await deleteMessage(link, stream, 1)).toBe(false); // before the first: "store EOF"
    expect(await deleteMessage(link, stream, 99)).toBe(false); // past the last
  });

  it('a missing stream is an error, not an empty subject', async () => {
    const missing = `${stream}_missing`;
    const err = await lastMessage(link, missing, `${stream}.x`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeDefined();
    expect(isNotFound(err)).toBe(false);
    await expect(deleteMessage(link, missing, 1)).rejects.toThrow(/stream not found/);
  });

  it('a wrong address fails naming the configuration key', async () => {
    await expect(openJetStream({ servers: ['127.0.0.1:1'], configKey: 'ingest.jetstream[0].servers' }, 'herald:test')).rejects.toThrow(/ingest\.jetstream\[0\]\.servers=127\.0\.0\.1:1/);
  });
});
