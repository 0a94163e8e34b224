/**
 * Reading an HTTP answer Herald fetched (a proxy hook's, a key set URL's) without trusting its
 * size: a declared or actual length past the cap stops the read and cancels the rest.
 */

/** The answer was longer than the cap; what was read is dropped. */
export class AnswerTooLarge extends Error {
  constructor(readonly max: number) {
    super(`the answer is larger than ${max} bytes`);
  }
}

export async function readCappedText(res: Response, max: number): Promise<string> {
  if (Number(res.headers.get('content-length') ?? 0) > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new AnswerTooLarge(max);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new AnswerTooLarge(max);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
