/**
 * The loadgen's lean receive path: delivery frames are recognised and read without JSON.parse,
 * by finding `"seq":` and `"sentAt":` in the raw bytes and reading the numbers in place.
 * Works for both dialects, since both carry the publisher's payload `{seq, sentAt}` verbatim.
 */

const SEQ = Buffer.from('"seq":');
const SENT_AT = Buffer.from('"sentAt":');

/** Index of the first byte after `"seq":` in `data`, or -1 when `data` is not a delivery. */
export function findSeq(data: Buffer): number {
  const at = data.indexOf(SEQ);
  return at < 0 ? -1 : at + SEQ.length;
}

/** Index of the first byte after `"sentAt":`, or -1. */
export function findSentAt(data: Buffer, from = 0): number {
  let at = data.indexOf(SENT_AT, from);
  if (at < 0 && from > 0) at = data.indexOf(SENT_AT); // payload keys may come in either order
  return at < 0 ? -1 : at + SENT_AT.length;
}

/** Reads a non-negative JSON number (digits, optional fraction) starting at `at`; NaN if none. */
export function readNumber(data: Buffer, at: number): number {
  let i = at;
  const end = data.length;
  let whole = 0;
  let digits = 0;
  while (i < end) {
    const c = data[i]!;
    if (c < 48 || c > 57) break;
    whole = whole * 10 + (c - 48);
    digits++;
    i++;
  }
  if (digits === 0) return NaN;
  if (i < end && data[i] === 46) {
    i++;
    let scale = 0.1;
    let frac = 0;
    while (i < end) {
      const c = data[i]!;
      if (c < 48 || c > 57) break;
      frac += (c - 48) * scale;
      scale /= 10;
      i++;
    }
    return whole + frac;
  }
  return whole;
}
