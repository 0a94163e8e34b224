/**
 * users: user-targeted publishes. N connections, none subscribed to anything, authenticated as
 * users with 1, 2, … `--devices` connections in turn (default 3: 1000 connections are 500
 * users); the publisher POSTs `{"user": …}` round robin over the users at R/s, each user with its
 * own seq, and every device of the user must get each message.
 */
import { publishingScenario } from './publishing.js';

export const users = publishingScenario({
  name: 'users',
  summary: 'user-targeted publishes: users with 1…3 devices, R publishes/s round robin over users',
  defaults: { connections: 1000, rate: 200, durationS: 10, maxDevices: 3 },
  layout: 'users',
});
