/**
 * The JSON Schemas of protocol v1, as shipped in this package's `schemas/` folder: what a client
 * frame and a message envelope must look like. Node only (they are read from disk); browsers that
 * want them import the JSON files (`@herald/protocol/schemas/*.schema.json`).
 */
import { readFileSync } from 'node:fs';

function readSchema(file: string): Record<string, unknown> {
  // The same relative path from src/ (tests, type-checking) and dist/ (the built package).
  return JSON.parse(readFileSync(new URL(`../schemas/${file}`, import.meta.url), 'utf8')) as Record<string, unknown>;
}

/** `herald:client-frames`: one `$defs` entry per client frame type. A fresh copy on each call. */
export function clientFramesSchema(): Record<string, unknown> {
  return readSchema('client-frames.schema.json');
}

/** `herald:envelope`: the standard message envelope `{msgId, timestamp, source, eventType, version, payload}`. A fresh copy on each call. */
export function envelopeSchema(): Record<string, unknown> {
  return readSchema('envelope.schema.json');
}
