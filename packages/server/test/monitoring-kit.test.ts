/**
 * Issue 15, item 2: the monitoring kit in deploy/monitoring/ against a real Prometheus.
 *
 * `promtool check rules` checks the rules file. Then Debian's Prometheus scrapes a running Herald
 * (the scrape job is named `herald`, as in the sample prometheus.yml) once a second, with the
 * rules loaded, while clients load it: subscribers, a publisher on the HTTP API, a client that
 * stops reading until it is closed as a slow consumer, a refused origin, a per-IP refusal, a
 * rate-limited subscriber and an invalid frame — so every labelled series the kit reads exists.
 * Once Prometheus has the samples, every dashboard panel's expression and every rule's expression
 * is evaluated through /api/v1/query:
 *
 * - dashboard panels, with Grafana's variables replaced ($job and $instance by their "All" value
 *   `.+`, $__rate_interval and $__interval by windows that fit the 1 s scrape interval), must
 *   answer without error and with at least one series;
 * - recording rules: the expression and the recorded series itself must have series (the latter
 *   shows Prometheus evaluated the rule);
 * - alerting rules: an alert that is not firing legitimately returns no series, so its full
 *   expression is only required to evaluate without error, and the expression with its last
 *   top-level comparison removed (`x > 0.25` → `x`) must return series — the alert watches
 *   something that exists. Prometheus's own rule health (/api/v1/rules) must be "ok" for all.
 *
 * Without prometheus/promtool the tests are skipped with a loud warning, except under CI=true,
 * where that is a failure (.ci/run installs them).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { freePort } from './helpers/processes.js';
import { REPO_ROOT } from './helpers/paths.js';
import { refusedUpgrade } from './helpers/raw-conn.js';
import { API_KEY, startTestServer, TestSocket } from './helpers/server.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const RULES = join(REPO_ROOT, 'deploy/monitoring/herald.rules.yml');
const DASHBOARD = join(REPO_ROOT, 'deploy/monitoring/herald-dashboard.json');

const haveTools = existsSync(PROMETHEUS) && existsSync(PROMTOOL);
if (!haveTools) {
  const message = `prometheus (${PROMETHEUS}) or promtool (${PROMTOOL}) is not installed: apt-get install -y prometheus`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: failing instead of skipping)`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING MONITORING KIT TESTS — ${message}\n${bar}\n`);
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
}
interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
}
/** A rule as Prometheus loaded it from the file (/api/v1/rules): its expression re-printed. */
interface LoadedRule {
  name: string;
  type: 'recording' | 'alerting';
  query: string;
  health: string;
  lastError?: string;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
/** `record:` and `alert:` lines in the rules file, to check Prometheus loaded every one. */
const ruleNames = [...readFileSync(RULES, 'utf8').matchAll(/^\s*-\s*(?:record|alert):\s*(\S+)\s*$/gm)].map((m) => m[1]!);
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');

/** Grafana's variables as a query with the "All" selection sends them, windows fitted to a 1 s scrape. */
function substituteGrafana(expr: string): string {
  return expr.replaceAll('$__rate_interval', '10s').replaceAll('$__interval', '2s').replaceAll('$job', '.+').replaceAll('$instance', '.+');
}

const COMPARISONS = ['==', '!=', '>=', '<=', '>', '<'];

/**
 * The left side of an expression's last comparison made outside any brackets or strings
 * (`sum(x{a=~"b"}) > 0.1` → `sum(x{a=~"b"})`), or undefined when it has none.
 */
function withoutComparison(expr: string): string | undefined {
  let depth = 0;
  let quote: string | undefined;
  let cut: number | undefined;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if ('({['.includes(c)) depth++;
    else if (')}]'.includes(c)) depth--;
    else if (depth === 0) {
      const op = COMPARISONS.find((o) => expr.startsWith(o, i));
      if (op) {
        cut = i;
        i += op.length - 1;
      }
    }
  }
  return cut === undefined ? undefined : expr.slice(0, cut).trim();
}

interface QueryAnswer {
  status: string;
  error?: string;
  data?: { resultType: string; result: unknown[] };
}

describe('the Grafana dashboard and the rules files, statically', () => {
  it('every panel queries a herald_ series through the templated datasource', () => {
    expect(dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(queryPanels.length).toBeGreaterThan(15);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of queryPanels) {
      expect(p.datasource?.uid, p.title).toBe('${DS_PROMETHEUS}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.datasource?.uid, p.title).toBe('${DS_PROMETHEUS}');
        expect(t.expr, p.title).toMatch(/\bherald_[a-z_]+/);
      }
    }
    // The list: each of these is on the dashboard.
    const exprs = queryPanels.flatMap((p) => p.targets!.map((t) => t.expr)).join('\n');
    for (const series of ['herald_connections', 'herald_deliveries_total', 'herald_publishes_total', 'herald_delivery_latency_seconds_bucket', 'herald_slow_consumer_closes_total', 'herald_connections_rejected_total', 'herald_rate_limited_total', 'nodejs_eventloop_lag_p99_seconds', 'process_resident_memory_bytes', 'herald_retries_exhausted_total', 'herald_inbox_dropped_total']) {
      expect(exprs).toContain(series);
    }
  });

  it('removes only a top-level comparison', () => {
    expect(withoutComparison('up{job=~"herald.*"} == 0')).toBe('up{job=~"herald.*"}');
    expect(withoutComparison('sum by (a) (x{reason=~"a|b"}) > 0.1')).toBe('sum by (a) (x{reason=~"a|b"})');
    expect(withoutComparison('x > 2 * 1024 * 1024')).toBe('x');
    expect(withoutComparison('sum(rate(x{le="<=1"}[5m]))')).toBeUndefined();
  });

  it.skipIf(!haveTools)('the sample scrape configuration passes promtool check config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-promcfg-'));
    try {
      // Its key file and rules file, where this machine has them.
      const keyFile = join(dir, 'herald-ops-key');
      writeFileSync(keyFile, 'ops-key\n');
      const sample = readFileSync(join(REPO_ROOT, 'deploy/monitoring/prometheus.yml'), 'utf8');
      const rendered = sample.replace('/etc/prometheus/herald-ops-key', keyFile).replace('  - herald.rules.yml', `  - ${JSON.stringify(RULES)}`);
      expect(rendered).not.toContain('/etc/prometheus');
      expect(rendered).toContain(RULES);
      writeFileSync(join(dir, 'prometheus.yml'), rendered);
      const out = execFileSync(PROMTOOL, ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' });
      expect(out).toContain(`SUCCESS: ${ruleNames.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!haveTools)('passes promtool check rules', () => {
    const out = execFileSync(PROMTOOL, ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(out).toContain('SUCCESS');
    expect(out).toContain(`${ruleNames.length} rules found`);
  });
});

describe.skipIf(!haveTools)('every panel and rule against Prometheus scraping a loaded Herald', () => {
  let herald: HeraldServer;
  let prometheus: ChildProcess | undefined;
  let prometheusExited: Promise<void> | undefined;
  let prometheusLog = '';
  let dir: string;
  let promUrl: string;
  const sockets: TestSocket[] = [];
  let publishing = true;
  let publisher: Promise<void> | undefined;
  /** What the background publisher got other than 200, checked by the last test. */
  const publishFailures: string[] = [];

  async function query(expr: string): Promise<QueryAnswer> {
    const res = await fetch(`${promUrl}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
    return (await res.json()) as QueryAnswer;
  }

  async function loadedRules(): Promise<LoadedRule[]> {
    const body = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: LoadedRule[] }> } };
    return body.data.groups.flatMap((g) => g.rules);
  }

  async function seriesCount(expr: string): Promise<number> {
    const a = await query(expr);
    return a.status === 'success' ? (a.data?.result.length ?? 0) : 0;
  }

  /** Polls until `cond` holds; on time-out says what it was waiting for (and what Prometheus said). */
  async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; prometheus log:\n${prometheusLog.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  beforeAll(async () => {
    herald = await startTestServer({
      origins: { allowed: ['https://app.example'] },
      limits: { maxQueueBytes: 64 * 1024, maxConnectionsPerIp: 8 },
      rateLimits: { connection: { subscribe: { perSecond: 1, burst: 2 } } },
    });

    // Subscribers of the live channel.
    for (let i = 0; i < 3; i++) {
      const s = await TestSocket.connect(herald, { sub: `viewer${i}` });
      await s.subscribe('live');
      sockets.push(s);
    }
    // A publisher on the HTTP API, running until the end of the tests.
    publisher = (async () => {
      for (let n = 0; publishing; n++) {
        try {
          const res = await fetch(`${herald.url}/api/v1/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
            body: JSON.stringify({ channel: 'live', eventType: 'tick', payload: { n } }),
          });
          const text = await res.text();
          if (res.status !== 200) publishFailures.push(`${res.status} ${text}`);
        } catch (err) {
          publishFailures.push(String(err));
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    // A client that stops reading while its channel gets far more than limits.maxQueueBytes (the
    // loopback socket buffers take a few MB first): it is closed as a slow consumer.
    const slow = await TestSocket.connect(herald, { sub: 'stalled' });
    await slow.subscribe('bulk');
    (slow.ws as unknown as { _socket: Socket })._socket.pause();
    const closes = async () => (await herald.node.metrics.slowConsumerCloses.get()).values[0]?.value ?? 0;
    for (let i = 0; i < 2000 && (await closes()) === 0; i++) await herald.publish({ channel: 'bulk', eventType: 'blob', payload: 'x'.repeat(32 * 1024) });
    expect(await closes()).toBe(1);
    (slow.ws as unknown as { _socket: Socket })._socket.resume();
    await slow.closed;

    // A subscriber past its subscribe bucket (burst 2): rate_limited.
    const greedy = await TestSocket.connect(herald, { sub: 'greedy' });
    sockets.push(greedy);
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(await greedy.request({ type: 'subscribe', channel: `greedy${i}` }));
    expect(replies.some((r) => r.type === 'error' && r.error?.code === 'rate_limited')).toBe(true);
    // An invalid frame.
    greedy.ws.send('this is not JSON');
    await greedy.next((f) => f.type === 'error');

    // A browser origin that is not allowed.
    expect((await refusedUpgrade(herald.wsUrl, { headers: { origin: 'https://elsewhere.example' } })).status).toBe(403);
    // Connections from one IP past limits.maxConnectionsPerIp.
    const extra: TestSocket[] = [];
    let perIpRefusal: number | undefined;
    for (let i = 0; i < 10 && perIpRefusal === undefined; i++) {
      try {
        extra.push(await TestSocket.open(herald.wsUrl));
      } catch (err) {
        perIpRefusal = (err as { status?: number }).status;
      }
    }
    expect(perIpRefusal).toBe(429);
    for (const s of extra) s.close();

    dir = mkdtempSync(join(tmpdir(), 'herald-prometheus-'));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(RULES)}`,
        'scrape_configs:',
        '  - job_name: herald',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${herald.port}']`,
        '',
      ].join('\n'),
    );
    execFileSync(PROMTOOL, ['check', 'config', config], { stdio: 'pipe' });
    const proc = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    prometheus = proc;
    proc.stdout.on('data', (d: Buffer) => (prometheusLog += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (prometheusLog += d.toString()));
    prometheusExited = new Promise((resolve) => proc.once('exit', () => resolve()));

    await until('Prometheus to answer', async () => {
      if (proc.exitCode !== null) throw new Error(`prometheus exited ${proc.exitCode}: ${prometheusLog}`);
      return fetch(`${promUrl}/-/ready`).then((r) => r.ok, () => false);
    });
    await until('up{job="herald"} == 1', async () => (await seriesCount('up{job="herald"} == 1')) === 1);
    // Rates over the dashboard's 10 s window and the rules' windows need two samples of each counter.
    await until('two scrapes of herald_deliveries_total', async () => (await seriesCount('count_over_time(herald_deliveries_total[10s]) >= 2')) === 1);
  }, 120_000);

  afterAll(async () => {
    publishing = false;
    await publisher?.catch(() => undefined);
    for (const s of sockets) s.close();
    if (prometheus?.pid !== undefined && prometheus.exitCode === null) {
      const pid = prometheus.pid;
      process.kill(pid, 'SIGTERM');
      const killer = setTimeout(() => prometheus?.exitCode === null && process.kill(pid, 'SIGKILL'), 10_000);
      await prometheusExited;
      clearTimeout(killer);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    await herald?.close();
  }, 30_000);

  /**
   * Waits (by condition) until every expression has series or the time is up, then reports each
   * that errs or has none — so a missing series fails with its name, not with a time-out.
   */
  async function expectAllHaveSeries(checks: Array<{ name: string; expr: string }>): Promise<void> {
    const failures = async () => {
      const out: string[] = [];
      for (const c of checks) {
        const a = await query(c.expr);
        if (a.status !== 'success') out.push(`${c.name}: error ${a.error} in ${c.expr}`);
        else if ((a.data?.result.length ?? 0) === 0) out.push(`${c.name}: no series for ${c.expr}`);
      }
      return out;
    };
    let last: string[] = [];
    await until('every expression to have series', async () => (last = await failures()).length === 0, 45_000).catch(() => undefined);
    expect(last).toEqual([]);
  }

  it('every dashboard panel expression returns series', async () => {
    const checks = queryPanels.flatMap((p) => p.targets!.map((t) => ({ name: `panel "${p.title}" ${t.refId}`, expr: substituteGrafana(t.expr) })));
    expect(checks.length).toBeGreaterThan(20);
    await expectAllHaveSeries(checks);
  }, 60_000);

  it('the dashboard variables return values', async () => {
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      const m = /^label_values\((.+), (\w+)\)$/.exec((v.query as { query: string }).query);
      expect(m, v.name).not.toBeNull();
      const a = await query(substituteGrafana(m![1]!));
      expect(a.status).toBe('success');
      expect((a.data!.result as Array<{ metric: Record<string, string> }>).map((r) => r.metric[m![2]!]).filter(Boolean).length, v.name).toBeGreaterThan(0);
    }
  });

  it('every recording rule returns series, and Prometheus has recorded each', async () => {
    const recording = (await loadedRules()).filter((r) => r.type === 'recording');
    expect(recording.length).toBeGreaterThan(5);
    await expectAllHaveSeries(recording.flatMap((r) => [
      { name: `rule ${r.name} (expression)`, expr: r.query },
      { name: `rule ${r.name} (recorded)`, expr: r.name },
    ]));
  }, 60_000);

  it('every alerting rule evaluates without error, and what it compares has series', async () => {
    const alerts = (await loadedRules()).filter((r) => r.type === 'alerting');
    expect(alerts.length).toBeGreaterThan(5);
    for (const r of alerts) {
      // The full expression: no error; no series is allowed (the alert is simply not firing).
      const a = await query(r.query);
      expect({ alert: r.name, status: a.status, error: a.error }).toEqual({ alert: r.name, status: 'success', error: undefined });
    }
    await expectAllHaveSeries(alerts.map((r) => {
      const lhs = withoutComparison(r.query);
      expect(lhs, `alert ${r.name} has no comparison to remove`).toBeDefined();
      return { name: `alert ${r.name} (comparison removed)`, expr: lhs! };
    }));
  }, 60_000);

  it('the load ran: every HTTP publish was accepted and the subscribers received them', async () => {
    expect(publishFailures).toEqual([]);
    for (const s of sockets.slice(0, 3)) expect(s.messages().length).toBeGreaterThan(10);
  });

  it('Prometheus reports every rule healthy', async () => {
    // Freshly loaded rules are "unknown" until their first evaluation.
    await until('every rule evaluated', async () => (await loadedRules()).every((r) => r.health !== 'unknown'));
    const states = await loadedRules();
    expect(states.map((r) => r.name).sort()).toEqual([...ruleNames].sort());
    for (const r of states) expect({ rule: r.name, health: r.health, lastError: r.lastError ?? '' }).toEqual({ rule: r.name, health: 'ok', lastError: '' });
  });
});
