/**
 * The vidgate dashboards as data: built with `@grafana/grafana-foundation-sdk`, rendered to the JSON committed under
 * grafana/dashboards/, and listed query by query for the tests that run them against a real Prometheus.
 */
import { buildCostDashboard } from './cost-dashboard';
import { buildUptimeDashboard } from './uptime-dashboard';

/** Dashboard file names (without `.json`) under grafana/dashboards/, each to its builder. */
const builders = {
  cost: buildCostDashboard,
  uptime: buildUptimeDashboard,
} as const;

/** The name of a dashboard file under grafana/dashboards/ (without `.json`). */
export type DashboardName = keyof typeof builders;

/** One panel query: the dashboard file, the panel title, the target's refId and its PromQL (with `$variables`). */
export interface PanelQuery {
  dashboard: DashboardName;
  panel: string;
  refId: string;
  expr: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Recursively sorts object keys, so that the JSON does not depend on the order the SDK sets fields in. */
function sortKeys(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortKeys(value[key] as Json)]),
  );
}

/**
 * Builds one dashboard as plain JSON: panels numbered 1, 2, … in order (stable ids), keys sorted, functions and
 * undefined fields dropped (a JSON round trip).
 */
export function buildDashboardJson(name: DashboardName): Record<string, Json> {
  const built = JSON.parse(JSON.stringify(builders[name]().build())) as { panels?: { id?: number }[] };
  (built.panels ?? []).forEach((panel, i) => {
    panel.id = i + 1;
  });
  return sortKeys(built as Json) as Record<string, Json>;
}

/** Every dashboard, as the exact text of its committed file grafana/dashboards/<name>.json (2-space indent, final newline). */
export function renderDashboards(): Record<DashboardName, string> {
  const names = Object.keys(builders) as DashboardName[];
  return Object.fromEntries(
    names.map((name) => [name, `${JSON.stringify(buildDashboardJson(name), null, 2)}\n`]),
  ) as Record<DashboardName, string>;
}

/**
 * Every panel target of every dashboard, in panel order, with its PromQL exactly as in the JSON (template variables
 * unsubstituted: pass `expr` through substituteTemplateVariables() before sending it to Prometheus).
 */
export function dashboardQueries(): PanelQuery[] {
  const queries: PanelQuery[] = [];
  for (const name of Object.keys(builders) as DashboardName[]) {
    const json = buildDashboardJson(name) as { panels?: { title?: string; targets?: { refId?: string; expr?: string }[] }[] };
    for (const panel of json.panels ?? []) {
      for (const t of panel.targets ?? []) {
        if (t.expr === undefined) continue;
        queries.push({ dashboard: name, panel: panel.title ?? '', refId: t.refId ?? '', expr: t.expr });
      }
    }
  }
  return queries;
}

/** Default time windows substituted for Grafana's built-in interval variables. */
export interface Substitutions {
  /** `$__rate_interval` (Grafana: max(4 × scrape interval, step + scrape interval)). Default `1m`. */
  rateInterval?: string;
  /** `$__range` (the dashboard's time range). Default `1h`. */
  range?: string;
  /**
   * Regexes for `$team` (team ids), `$provider` and `$model`, as Grafana renders a multi-value selection
   * (`(t1|t2)`). Default `.*` for each: the "All" value.
   */
  variables?: Partial<Record<'team' | 'provider' | 'model', string>>;
}

/**
 * Turns a panel expr into PromQL Prometheus accepts, as Grafana would: `$team`, `$provider` and `$model` (and their
 * `${name}` forms, always used as `label=~"…"`) become the given regexes, by default `.*` (every variable on "All");
 * `$__rate_interval` and `$__range` become the given windows.
 */
export function substituteTemplateVariables(expr: string, substitutions: Substitutions = {}): string {
  const variables = substitutions.variables ?? {};
  return expr
    .replaceAll('$__rate_interval', substitutions.rateInterval ?? '1m')
    .replaceAll('$__range', substitutions.range ?? '1h')
    .replace(/\$\{?(team|provider|model)\}?/g, (_, name: 'team' | 'provider' | 'model') => variables[name] ?? '.*');
}
