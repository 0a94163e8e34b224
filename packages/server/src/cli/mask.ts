/**
 * The effective configuration as `herald config check` prints it: every secret replaced so the
 * output can be pasted into a ticket. A key is secret by its name (…secret, …password, …passwordHash, …key,
 * …keys, …token — so keys added later are covered without a list to keep), and any URL's
 * user-info (`redis://user:pass@host`) is masked wherever it appears.
 */
import { WELL_KNOWN_SECRETS } from '../exposure.js';

const SECRET_NAME = /(secret|password|passwd|passwordhash|token|keys?)$/i;
/**
 * Fields of a key written as an object (`api.keys: [{ "key", "scope", "channels" }]`) that say what
 * the key may do, not what it is: shown, so the printed config tells which key can do what.
 */
const KEY_PERMISSIONS = new Set(['scope', 'channels']);

function maskSecret(value: string): string {
  if (value === '') return '';
  if (WELL_KNOWN_SECRETS.has(value)) return '<masked: the example secret published with Herald>';
  return `<masked: ${value.length} characters>`;
}

/** `scheme://user:pass@host/…` → `scheme://user:***@host/…`; other strings unchanged. */
export function maskUrlCredentials(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@\s]*)@/i, (_m, scheme: string, info: string) => {
    const colon = info.indexOf(':');
    return `${scheme}${colon >= 0 ? `${info.slice(0, colon)}:***` : '***'}@`;
  });
}

export function maskSecrets(value: unknown, secretKey = false): unknown {
  if (typeof value === 'string') return secretKey ? maskSecret(value) : maskUrlCredentials(value);
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, secretKey));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, (secretKey && !KEY_PERMISSIONS.has(k)) || SECRET_NAME.test(k))]));
  }
  return value;
}
