#!/usr/bin/env node
// Builds the load generator's optional receive addon (packages/bench/native/bench-recv, used by
// src/loadgen/native-recv.ts). Without it `--client native` is refused and the loadgen reads with
// `--client raw`.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from 'herald/scripts/native-addon.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
buildAddon({ dir: join(root, 'native', 'bench-recv'), target: 'bench_recv', source: 'bench_recv.c', without: "the benchmark's --client native is unavailable" });
