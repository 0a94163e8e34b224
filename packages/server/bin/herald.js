#!/usr/bin/env node
// The `herald` command: the built CLI (npm run build, or the published package's dist/).
import '../dist/cli/herald.js';
