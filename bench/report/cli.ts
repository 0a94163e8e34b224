/**
 * `node dist/bench/report/cli.js results.jsonl [more.jsonl…] --out report.html [--png report.png]`
 * Renders benchmark JSON lines as an offline HTML page of charts, and optionally a PNG of it
 * taken with headless Chromium (Debian's /usr/bin/chromium) for the README.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderReport, type RunLine } from './html-report.js';

const args = process.argv.slice(2);
const inputs: string[] = [];
let out = 'bench-report.html';
let png: string | undefined;
let title = 'Herald benchmarks';
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out') out = args[++i]!;
  else if (args[i] === '--png') png = args[++i]!;
  else if (args[i] === '--title') title = args[++i]!;
  else inputs.push(args[i]!);
}
if (inputs.length === 0) {
  process.stderr.write('usage: report.js <results.jsonl>… [--out report.html] [--png report.png] [--title text]\n');
  process.exit(2);
}
const lines: RunLine[] = [];
for (const file of inputs) {
  for (const text of readFileSync(file, 'utf8').split('\n')) {
    if (!text.trim().startsWith('{')) continue;
    try {
      lines.push(JSON.parse(text) as RunLine);
    } catch {
      process.stderr.write(`skipping a line of ${file} that is not JSON\n`);
    }
  }
}
const html = renderReport(lines, { title, generated: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC', machine: `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}` });
writeFileSync(out, html);
process.stderr.write(`wrote ${out} (${lines.length} lines)\n`);
if (png) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
  const page = await browser.newPage({ viewport: { width: 760, height: 900 } });
  await page.goto(pathToFileURL(resolve(out)).href);
  await page.screenshot({ path: png, fullPage: true });
  await browser.close();
  process.stderr.write(`wrote ${png}\n`);
}
