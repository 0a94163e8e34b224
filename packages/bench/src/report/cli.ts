/**
 * `node packages/bench/dist/report/cli.js results.jsonl [more.jsonl…] --out report.html [--png report.png]`
 * Renders benchmark JSON lines as an offline HTML page of charts, and optionally a PNG of it
 * taken with headless Chromium (Debian's /usr/bin/chromium) for the README.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { renderReport, type RunLine } from './html-report.js';

const CHROMIUM = '/usr/bin/chromium';

const program = new Command('report')
  .description('render benchmark JSON lines (from --json-out or the bench tools) as an offline HTML page of charts')
  .argument('<results...>', 'files of JSON lines')
  .option('--out <file>', 'HTML file to write', 'bench-report.html')
  .option('--png <file>', `also a screenshot of it, taken with headless Chromium (${CHROMIUM})`)
  .option('--title <text>', 'page title', 'Herald benchmarks');
program.parse();
const inputs = program.args;
const { out, png, title } = program.opts<{ out: string; png?: string; title: string }>();

for (const file of inputs) if (!existsSync(file)) program.error(`error: ${file} does not exist (give the files written by --json-out)`);
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
if (lines.length === 0) program.error(`error: no JSON lines in ${inputs.join(', ')}`);
const html = renderReport(lines, { title, generated: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC', machine: `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}` });
writeFileSync(out, html);
process.stderr.write(`wrote ${out} (${lines.length} lines)\n`);
if (png) {
  if (!existsSync(CHROMIUM)) program.error(`error: --png needs Chromium at ${CHROMIUM} (apt-get install chromium); the HTML report was written`);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
  const page = await browser.newPage({ viewport: { width: 760, height: 900 } });
  await page.goto(pathToFileURL(resolve(out)).href);
  await page.screenshot({ path: png, fullPage: true });
  await browser.close();
  process.stderr.write(`wrote ${png}\n`);
}
