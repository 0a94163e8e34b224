/** The start-up check of the admin UI's credential (config.ts runs it with the other cross-key checks). */
import type { HeraldConfig } from '../../config-types.generated.js';
import { parsePasswordHash } from './password.js';

/** Why the UI cannot be enabled with this configuration, or undefined when it can. */
export function adminUiCredentialProblem(config: Pick<HeraldConfig, 'admin' | 'api'>): string | undefined {
  const ui = config.admin.ui;
  if (!ui.enabled) return undefined;
  if (ui.passwordHash) {
    const parsed = parsePasswordHash(ui.passwordHash);
    if (typeof parsed === 'string') return `admin.ui.passwordHash: ${parsed}`;
    return undefined;
  }
  const adminKey = config.api.keys.some((k) => typeof k === 'string' || k.scope === 'admin');
  if (ui.apiKeyLogin && adminKey) return undefined;
  return 'admin.ui.enabled: the admin UI needs a credential: set admin.ui.passwordHash (from `herald admin hash-password`) or an admin-scope key in api.keys with admin.ui.apiKeyLogin on';
}
