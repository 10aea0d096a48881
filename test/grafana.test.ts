// The dashboards, alert rules and Prometheus config under grafana/: the committed JSON is what the generator writes,
// every panel, variable and alert query is PromQL a real Prometheus accepts and names only metrics of the contract
// (docs/metrics.md), and promtool checks the rules, runs their unit tests and checks the scrape config.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import {
  buildDashboardJson,
  dashboardQueries,
  renderDashboards,
  substituteTemplateVariables,
  type DashboardName,
} from '../grafana/src/dashboards';
import { startPrometheus, type PromApiAnswer, type PrometheusServer } from './support/prometheus';
import { CREDIT_VALUE_USD, syntheticOpenMetrics } from './support/synthetic-metrics';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const alertsDir = path.join(root, 'grafana', 'alerts');

/** Every alert rule of grafana/alerts/*.yml: its name and expr. */
function alertRules(): { alert: string; expr: string }[] {
  return fs
    .readdirSync(alertsDir)
    .filter((f) => f.endsWith('.yml'))
    .flatMap((f) => {
      const doc = YAML.parse(fs.readFileSync(path.join(alertsDir, f), 'utf8')) as {
        groups: { rules: { alert?: string; expr: string }[] }[];
      };
      return doc.groups.flatMap((g) => g.rules.map((r) => ({ alert: r.alert ?? '', expr: r.expr })));
    });
}

/** The PromQL inside each dashboard's query variables (`label_values(X, label)` → X, `query_result(X)` → X). */
function variableQueries(): { variable: string; expr: string }[] {
  return (['cost', 'uptime'] as const).flatMap((name) => {
    const json = buildDashboardJson(name) as { templating: { list: { name: string; type: string; definition?: string }[] } };
    return json.templating.list
      .filter((v) => v.type === 'query')
      .map((v) => {
        const m = /^(?:label_values\((.*),\s*\w+\)|query_result\((.*)\))$/.exec(v.definition ?? '');
        if (!m) throw new Error(`${name}: variable ${v.name} has an unexpected query ${v.definition}`);
        return { variable: `${name}.${v.name}`, expr: (m[1] ?? m[2])! };
      });
  });
}

/** Metric names of the contract: the first column of docs/metrics.md's tables. */
function contractMetrics(): Set<string> {
  const doc = fs.readFileSync(path.join(root, 'docs', 'metrics.md'), 'utf8');
  return new Set([...doc.matchAll(/^\| `(vidgate_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!));
}

describe('dashboards', () => {
  it('the committed JSON is what `npm run gen:dashboards` writes', () => {
    for (const [name, text] of Object.entries(renderDashboards())) {
      const committed = fs.readFileSync(path.join(root, 'grafana', 'dashboards', `${name}.json`), 'utf8');
      expect(committed, `grafana/dashboards/${name}.json is stale: run npm run gen:dashboards`).toBe(text);
    }
    expect(renderDashboards()).toEqual(renderDashboards());
  });

  it('lays panels out on the 24-column grid without overlaps', () => {
    for (const name of ['cost', 'uptime'] as const) {
      const panels = (buildDashboardJson(name) as { panels: { title: string; gridPos: { x: number; y: number; w: number; h: number } }[] }).panels;
      for (const [i, a] of panels.entries()) {
        expect(a.gridPos.x + a.gridPos.w, a.title).toBeLessThanOrEqual(24);
        for (const b of panels.slice(i + 1)) {
          const apart =
            a.gridPos.x + a.gridPos.w <= b.gridPos.x ||
            b.gridPos.x + b.gridPos.w <= a.gridPos.x ||
            a.gridPos.y + a.gridPos.h <= b.gridPos.y ||
            b.gridPos.y + b.gridPos.h <= a.gridPos.y;
          expect(apart, `${name}: ${a.title} overlaps ${b.title}`).toBe(true);
        }
      }
    }
  });

  it('has stable uids, unique panel ids and every panel on the Prometheus data source variable', () => {
    for (const [name, uid] of [['cost', 'vidgate-cost'], ['uptime', 'vidgate-uptime']] as const) {
      const json = buildDashboardJson(name) as {
        uid: string;
        panels: { id: number; type: string; datasource?: { uid?: string }; targets?: { datasource?: { uid?: string } }[] }[];
      };
      expect(json.uid).toBe(uid);
      expect(json.panels.map((p) => p.id)).toEqual(json.panels.map((_, i) => i + 1));
      for (const panel of json.panels.filter((p) => p.type !== 'row')) {
        expect(panel.datasource?.uid).toBe('${datasource}');
        expect(panel.targets?.length).toBeGreaterThan(0);
        for (const t of panel.targets ?? []) expect(t.datasource?.uid).toBe('${datasource}');
      }
    }
  });

  it('names only metrics of the contract (docs/metrics.md), in panels, variables and alerts', () => {
    const known = contractMetrics();
    expect(known.size).toBeGreaterThan(20);
    const exprs = [...dashboardQueries(), ...variableQueries(), ...alertRules()].map((q) => q.expr);
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bvidgate_[a-z0-9_]+/g)].map((m) => m[0])));
    const unknown = [...used].filter((m) => !known.has(m) && !known.has(m.replace(/_(bucket|count|sum)$/, '')));
    expect(unknown).toEqual([]);
  });

  it('substitutes template variables as Grafana does with every variable on All', () => {
    expect(
      substituteTemplateVariables('sum(rate(x{team=~"$team", model=~"${model}", provider=~"$provider"}[$__rate_interval])) + y[$__range]'),
    ).toBe('sum(rate(x{team=~".*", model=~".*", provider=~".*"}[1m])) + y[1h]');
    expect(
      substituteTemplateVariables('x{team=~"$team", model=~"${model}"}[$__rate_interval]', {
        rateInterval: '2m',
        variables: { team: '(t1|t2)' },
      }),
    ).toBe('x{team=~"(t1|t2)", model=~".*"}[2m]');
  });
});

/** The value of each series of an instant vector answer, keyed by the given labels joined with `/`. */
function valuesBy(answer: PromApiAnswer, ...labels: string[]): Record<string, number> {
  expect(answer.status, answer.error).toBe('success');
  const result = (answer.data?.result ?? []) as { metric: Record<string, string>; value: [number, string] }[];
  return Object.fromEntries(result.map((r) => [labels.map((l) => r.metric[l] ?? '').join('/'), Number(r.value[1])]));
}

describe('PromQL against a real Prometheus holding a synthetic history of every metric', () => {
  const end_s = Math.floor(Date.now() / 1000);
  let prometheus: PrometheusServer;
  beforeAll(async () => {
    prometheus = await startPrometheus({ backfillOpenMetrics: syntheticOpenMetrics(end_s, 2 * 3600) });
  }, 90_000);
  afterAll(async () => {
    await prometheus?.stop();
  });

  /** Runs a panel's target (variables on All, $__rate_interval 1m, $__range 1h) at the end of the history. */
  async function panel(dashboard: DashboardName, title: string, refId = 'A'): Promise<PromApiAnswer> {
    const q = dashboardQueries().find((p) => p.dashboard === dashboard && p.panel === title && p.refId === refId);
    if (!q) throw new Error(`no panel ${dashboard} / ${title} / ${refId}`);
    return prometheus.query(substituteTemplateVariables(q.expr), end_s);
  }

  it('answers every panel query with data (variables on All, and on every value), and accepts every variable query and alert expr', async () => {
    // Every value selected, as Grafana renders it: a typo in a label matched by a variable returns nothing then.
    const everyValue = { variables: { team: '(t1|t2)', provider: '(a|b|cache)', model: '(sora-2|veo-3)' } };
    const queries = [
      ...dashboardQueries().map((q) => ({ what: `${q.dashboard} / ${q.panel} / ${q.refId}`, expr: q.expr, data: true })),
      ...variableQueries().map((q) => ({ what: `variable ${q.variable}`, expr: q.expr, data: true })),
      ...alertRules().map((r) => ({ what: `alert ${r.alert}`, expr: r.expr, data: false })),
    ];
    expect(queries.length).toBeGreaterThan(60);
    const failures: string[] = [];
    for (const q of queries) {
      for (const expr of new Set([substituteTemplateVariables(q.expr), substituteTemplateVariables(q.expr, everyValue)])) {
        expect(expr, q.what).not.toContain('$');
        const answer = await prometheus.query(expr, end_s);
        if (answer.status !== 'success') failures.push(`${q.what}: ${answer.errorType}: ${answer.error}\n  ${expr}`);
        else if (q.data && answer.data?.result.length === 0) failures.push(`${q.what}: no series\n  ${expr}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("lists team names for the cost dashboard's team variable, with team ids as values", async () => {
    const variable = (buildDashboardJson('cost') as { templating: { list: { name: string; definition: string; regex: string }[] } })
      .templating.list.find((v) => v.name === 'team')!;
    const inner = /^query_result\((.*)\)$/.exec(variable.definition)![1]!;
    const answer = await prometheus.query(inner, end_s);
    // Grafana's query_result() gives each series as `name{label="value", ...} value timestamp`, labels sorted.
    const lines = ((answer.data?.result ?? []) as { metric: Record<string, string>; value: [number, string] }[]).map(
      (r) =>
        `${r.metric.__name__ ?? ''}{${Object.keys(r.metric)
          .filter((k) => k !== '__name__')
          .sort()
          .map((k) => `${k}="${r.metric[k]}"`)
          .join(', ')}} ${r.value[1]} ${r.value[0] * 1000}`,
    );
    const regex = new RegExp(variable.regex.slice(1, -1));
    const options = lines.map((line) => regex.exec(line)?.groups).map((g) => `${g?.text}=${g?.value}`);
    expect(options.sort()).toEqual(['Acme=t1', 'Beta=t2']);
  });

  it('rejects a malformed query as bad_data (the check above can fail)', async () => {
    const answer = await prometheus.query('sum by (team (vidgate_team_info)');
    expect(answer).toMatchObject({ status: 'error', errorType: 'bad_data' });
  });

  it('computes spend in USD and credits, by team name, and what providers are paid', async () => {
    // Settled credits per second: t1 0.5 at a and 0.05 from the cache, t2 0.25 at b; a credit is worth 0.01 USD.
    expect(valuesBy(await panel('cost', 'Spend in USD (time range)'))['']).toBeCloseTo(0.8 * 3600 * CREDIT_VALUE_USD, 6);
    expect(valuesBy(await panel('cost', 'Spend in credits (time range)'))['']).toBeCloseTo(0.8 * 3600, 6);
    expect(valuesBy(await panel('cost', 'Paid to providers in USD (time range)'))['']).toBeCloseTo(0.1 * 3600, 6);
    const byTeam = valuesBy(await panel('cost', 'Spend by team (USD per hour)'), 'name');
    expect(Object.keys(byTeam).sort()).toEqual(['Acme', 'Beta']);
    expect(byTeam.Acme).toBeCloseTo(0.55 * 3600 * CREDIT_VALUE_USD, 6);
    expect(byTeam.Beta).toBeCloseTo(0.25 * 3600 * CREDIT_VALUE_USD, 6);
  });

  it('computes budget use, cache hit ratio, savings and the price per video second', async () => {
    expect(valuesBy(await panel('cost', 'Budget used'), 'name', 'window')).toEqual({ 'Acme/month': 0.95 });
    expect(valuesBy(await panel('cost', 'Cache hit ratio (time range)'))['']).toBeCloseTo(0.02 / 0.2, 6);
    expect(valuesBy(await panel('cost', 'Saved by cache and coalescing in USD (time range)'))['']).toBeCloseTo(0.4 * 3600 * CREDIT_VALUE_USD, 6);
    const paid = valuesBy(await panel('cost', 'Price per video second (USD)', 'A'), 'provider');
    expect(paid).toEqual({ a: expect.closeTo(0.1 / 0.5, 6) });
    const charged = valuesBy(await panel('cost', 'Price per video second (USD)', 'B'), 'model');
    expect(charged).toEqual({ 'sora-2': expect.closeTo((0.5 * CREDIT_VALUE_USD) / 0.5, 6) });
  });

  it('counts only provider-fault failures in the success ratio, and maps breaker states', async () => {
    // b's failures are all content-policy ones (fault="request"): its ratio stays 1.
    const ratio = valuesBy(await panel('uptime', 'Task success ratio by provider'), 'provider');
    expect(ratio).toEqual({ a: expect.closeTo(1 / 1.01, 6), b: 1 });
    expect(valuesBy(await panel('uptime', 'Breaker states'), 'provider', 'model')).toEqual({ 'a/sora-2': 0, 'b/veo-3': 2 });
    expect(valuesBy(await panel('uptime', 'API availability (time range)'))['']).toBeCloseTo(1 - 0.01 / 10.01, 6);
    expect(valuesBy(await panel('uptime', 'Tasks in flight and queued', 'A'))).toEqual({ '': 12 });
    expect(valuesBy(await panel('uptime', 'Tasks in flight and queued', 'B'))).toEqual({ '': 30 });
  });
});

describe('promtool', () => {
  const promtool = async (...args: string[]) => run('promtool', args, { cwd: root, timeout: 60_000 });

  it('checks the alert rules', async () => {
    const files = fs.readdirSync(alertsDir).filter((f) => f.endsWith('.yml')).map((f) => path.join('grafana', 'alerts', f));
    const { stdout } = await promtool('check', 'rules', ...files);
    expect(stdout).toContain('SUCCESS: 7 rules found');
  });

  it('passes the alert rules unit tests (each alert firing and not firing)', async () => {
    const dir = path.join(alertsDir, 'tests');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yml')).map((f) => path.join(dir, f));
    expect(files.length).toBeGreaterThan(0);
    const { stdout } = await promtool('test', 'rules', ...files);
    expect(stdout).toContain('SUCCESS');
    expect(stdout).not.toContain('FAILED');
    const tested = new Set(
      files.flatMap((f) => [...fs.readFileSync(f, 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1])),
    );
    expect([...tested].sort()).toEqual(alertRules().map((r) => r.alert).sort());
  });

  it('checks the Prometheus config and the rule files it loads', async () => {
    const { stdout } = await promtool('check', 'config', 'grafana/prometheus.yml');
    expect(stdout).toContain('SUCCESS: grafana/prometheus.yml is valid prometheus config file syntax');
    expect(stdout).toContain('SUCCESS: 7 rules found');
  });
});
