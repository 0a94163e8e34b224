import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { buildApp } from '../src/server.js';
import { serverFile } from './helpers/paths.js';

describe('api/openapi.json', () => {
  it('matches the document the server generates from its routes (run `npm run openapi` after changing a route)', async () => {
    const { app, node } = await buildApp(resolveConfig({ engine: { type: 'memory' }, log: { level: 'silent' } }));
    await app.ready();
    const live = JSON.parse(JSON.stringify(app.swagger()));
    await app.close();
    await node.close();
    expect(JSON.parse(readFileSync(serverFile('api/openapi.json'), 'utf8'))).toEqual(live);
  });
});
