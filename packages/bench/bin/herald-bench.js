#!/usr/bin/env node
// The `herald-bench` command: the built CLI (npm run build).
import '../dist/cli.js';
