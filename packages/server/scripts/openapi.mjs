#!/usr/bin/env node
// Writes packages/server/api/openapi.json from the routes' own schemas (the same document /docs serves).
// `npm run openapi` after changing a route; packages/server/test/openapi.test.ts fails while the file is stale.
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { buildApp } = await import(join(root, 'dist/server.js'));
const { resolveConfig } = await import(join(root, 'dist/config.js'));
const { app, node } = await buildApp(resolveConfig({ engine: { type: 'memory' }, log: { level: 'silent' } }));
await app.ready();
writeFileSync(join(root, 'api', 'openapi.json'), `${JSON.stringify(app.swagger(), null, 2)}\n`);
await app.close();
await node.close();
console.log('wrote api/openapi.json');
