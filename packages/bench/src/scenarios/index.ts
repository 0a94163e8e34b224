/** The scenario registry: add a module and list it here. */
import { admin } from './admin.js';
import { adminKill } from './admin-kill.js';
import { burst } from './burst.js';
import { channels } from './channels.js';
import { connect } from './connect.js';
import { fanout } from './fanout.js';
import { filter } from './filter.js';
import { idle } from './idle.js';
import { reliable } from './reliable.js';
import { saturate } from './saturate.js';
import type { Scenario } from './scenario.js';
import { storm } from './storm.js';
import { users } from './users.js';
import { webhooks } from './webhooks.js';

export const SCENARIOS: readonly Scenario[] = [fanout, idle, reliable, channels, burst, users, filter, storm, saturate, admin, adminKill, connect, webhooks];

export function findScenario(name: string): Scenario {
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) throw new Error(`unknown scenario "${name}" (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  return scenario;
}
