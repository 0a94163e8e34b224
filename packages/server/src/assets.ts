/** Locates files shipped beside the code (schemas, default config, demo page) from src/ or dist/. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'api')) && existsSync(join(dir, 'configs'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('cannot locate the Herald package root (api/ and configs/)');
}

export const PACKAGE_ROOT = findRoot();

export function assetPath(relative: string): string {
  return join(PACKAGE_ROOT, relative);
}

const cache = new Map<string, unknown>();

export function readJsonAsset<T = unknown>(relative: string): T {
  if (!cache.has(relative)) cache.set(relative, JSON.parse(readFileSync(assetPath(relative), 'utf8')));
  // A fresh copy each time so callers may mutate what they get.
  return structuredClone(cache.get(relative)) as T;
}
