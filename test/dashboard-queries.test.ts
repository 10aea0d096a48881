// Reading the PromQL out of dashboards and alert rules as code (test/support/dashboard-queries.ts), which the
// observability end-to-end test runs against a real Prometheus: the walk of panels, the template variables, and
// the probes an alert expression gives once its threshold is taken off.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alertProbes, alertRuleQueries, dashboardPanelQueries, dashboardVariableQueries, expandTemplate } from './support/dashboard-queries';
import { tempDir } from './support/gateway';

const dir = tempDir('vidgate-dashboards-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const target = (expr: string, refId = 'A', extra: object = {}) => ({ expr, refId, ...extra });

describe('dashboardPanelQueries', () => {
  it('walks top-level panels, collapsed rows, old-style rows, in file order, and skips other data sources and empty targets', () => {
    const d = path.join(dir, 'walk');
    fs.mkdirSync(d);
    fs.writeFileSync(
      path.join(d, 'a.json'),
      JSON.stringify({
        panels: [
          { title: 'Top', targets: [target('up'), target('', 'B'), target('1', 'C', { datasource: { type: '__expr__' } })] },
          { type: 'row', title: 'Row', collapsed: true, panels: [{ title: 'Inside', fieldConfig: { defaults: { unit: 'short' } }, targets: [target('vidgate_tasks_open', 'X')] }] },
          { type: 'text', title: 'Notes' },
        ],
        rows: [{ panels: [{ title: 'Old', targets: [target('rate(x[1m])')] }] }],
      }),
    );
    fs.writeFileSync(path.join(d, 'b.json'), JSON.stringify({ dashboard: { panels: [{ title: 'Wrapped', datasource: { type: 'prometheus', uid: '$datasource' }, targets: [target('y')] }] } }));
    fs.writeFileSync(path.join(d, 'notes.md'), 'not a dashboard');
    expect(dashboardPanelQueries(d)).toEqual([
      { source: 'dashboards/a.json: panel "Top" (A)', expr: 'up' },
      { source: 'dashboards/a.json: panel "Inside" (X)', expr: 'vidgate_tasks_open', unit: 'short' },
      { source: 'dashboards/a.json: panel "Old" (A)', expr: 'rate(x[1m])' },
      { source: 'dashboards/b.json: panel "Wrapped" (A)', expr: 'y' },
    ]);
  });

  it('names a file that is not JSON', () => {
    const d = path.join(dir, 'broken');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'bad.json'), '{');
    expect(() => dashboardPanelQueries(d)).toThrow(/bad\.json is not JSON/);
  });
});

describe('dashboardVariableQueries', () => {
  it('gives the selector of label_values() and query_result() variables, in either query shape', () => {
    const d = path.join(dir, 'vars');
    fs.mkdirSync(d);
    fs.writeFileSync(
      path.join(d, 'v.json'),
      JSON.stringify({
        templating: {
          list: [
            { name: 'datasource', type: 'datasource', query: 'prometheus' },
            { name: 'team', type: 'query', query: 'label_values(vidgate_team_info, team)' },
            { name: 'provider', type: 'query', query: { query: 'label_values(vidgate_breaker_state{state="open"}, provider)', refId: 'P' } },
            { name: 'top', type: 'query', query: 'query_result(topk(5, vidgate_team_reserved_credits))' },
            { name: 'any', type: 'query', query: 'label_values(job)' },
          ],
        },
      }),
    );
    expect(dashboardVariableQueries(d)).toEqual([
      { source: 'dashboards/v.json: variable $team', expr: 'vidgate_team_info' },
      { source: 'dashboards/v.json: variable $provider', expr: 'vidgate_breaker_state{state="open"}' },
      { source: 'dashboards/v.json: variable $top', expr: 'topk(5, vidgate_team_reserved_credits)' },
    ]);
  });
});

describe('alertRuleQueries', () => {
  it('reads alerting and recording rules of every group', () => {
    const d = path.join(dir, 'alerts');
    fs.mkdirSync(d);
    fs.writeFileSync(
      path.join(d, 'vidgate.yml'),
      ['groups:', '  - name: g', '    rules:', '      - alert: Down', '        expr: up == 0', '        for: 1m', '      - record: job:up:sum', '        expr: sum(up)', ''].join('\n'),
    );
    expect(alertRuleQueries(d)).toEqual([
      { source: 'alerts/vidgate.yml: alert Down', expr: 'up == 0' },
      { source: 'alerts/vidgate.yml: record job:up:sum', expr: 'sum(up)' },
    ]);
  });
});

describe('expandTemplate', () => {
  const w = { range_s: 90 };
  it('gives the built-in intervals the run window', () => {
    expect(expandTemplate('rate(x[$__rate_interval]) + increase(y[$__range]) + z[${__interval}] / $__range_s', w)).toBe('rate(x[90s]) + increase(y[90s]) + z[90s] / 90');
  });
  it('makes every other variable match anything, turning equality matchers into regex ones', () => {
    expect(expandTemplate('sum by (team) (x{team=~"$team", provider="${provider}", model!="[[model]]"})', w)).toBe('sum by (team) (x{team=~".*", provider=~".*", model!~".*"})');
    expect(expandTemplate('x{team=~"${team:regex}"}', w)).toBe('x{team=~".*"}');
  });
});

describe('alertProbes', () => {
  it.each([
    ['up == 0', ['up']],
    ['sum(rate(a[5m])) / sum(rate(b[5m])) > 0.05', ['sum(rate(a[5m])) / sum(rate(b[5m]))']],
    ['0.05 < bool x', ['x']],
    ['(x > 1) and on(team) (y >= 2)', ['x', 'y']],
    ['x > 1 unless ignoring(state) y == 0', ['x', 'y']],
    ['a > b', ['a', 'b']],
    ['absent(up{job="vidgate"} == 1)', ['up{job="vidgate"}']],
    ['absent_over_time(vidgate_tasks_open[10m])', ['vidgate_tasks_open']],
    ['x{name=~"a|b>c"} > 0', ['x{name=~"a|b>c"}']],
    ['vendor_total or on() vector(0)', ['vendor_total', 'vector(0)']],
    ['histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 2 * 60', ['histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))']],
    [
      '(max by (team) (left) / max by (team) (budget > 0) < 0.1) * on(team) group_left(name) max by (team, name) (info{name!="a>1)"})',
      ['(max by (team) (left) / max by (team) (budget)) * on(team) group_left(name) max by (team, name) (info{name!="a>1)"})'],
    ],
  ])('%s', (expr, probes) => {
    expect(alertProbes(expr)).toEqual(probes);
  });
});
