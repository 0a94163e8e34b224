/**
 * The nesting limit on JSON a client sends (`limits.maxJsonDepth`). Parsing deep JSON is safe in
 * V8, but almost everything done with the value afterwards — `JSON.stringify` on the way out,
 * schema validation, tag-filter compilation — recurses once per level and overflows the stack a
 * few thousand levels down. So the text is measured before it is parsed: one pass over the
 * characters that counts open brackets outside strings and stops as soon as the limit is passed.
 * It does not validate anything else; malformed text is left for the parser to refuse.
 *
 * Depth counts the outermost value: `{}` and `[]` are depth 1, `{"a":[1]}` is depth 2, a scalar is 0.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/** True when `text`, read as JSON, nests arrays and objects deeper than `maxDepth`. */
export function exceedsJsonDepth(text: string, maxDepth: number): boolean {
  const n = text.length;
  // Going past the limit needs more than `maxDepth` open brackets.
  if (n <= maxDepth) return false;
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i);
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

/** Index of the quote closing the string that opens at `open` (or the end of the text). */
function stringEnd(text: string, open: number): number {
  let i = open;
  for (;;) {
    i = text.indexOf('"', i + 1);
    if (i < 0) return text.length;
    // The quote is escaped when an odd number of backslashes precede it.
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === BACKSLASH) backslashes++;
    if ((backslashes & 1) === 0) return i;
  }
}
