// The PromQL of the dashboards and alert rules as code (grafana/dashboards/*.json, grafana/alerts/*.yml), read
// out so that a test can run every query against a real Prometheus: panel targets (rows and nested panels
// included), the dashboards' query variables, and the alert rules' expressions, with what each must show.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

/** One query to run, and where it comes from (for failure messages). */
export interface SourcedQuery {
  /** e.g. 'dashboards/money.json: panel "Spend per team" (A)'. */
  source: string;
  expr: string;
  /** A panel's unit (`fieldConfig.defaults.unit`, e.g. `currencyUSD`, `percentunit`), when it has one. */
  unit?: string;
}

/** Grafana's built-in variables, and the values a query gets for a dashboard whose time range is the whole run. */
export interface TemplateWindow {
  /** The dashboard's time range, in whole seconds: `$__range`, and `$__interval`/`$__rate_interval` too (see below). */
  range_s: number;
}

/** The JSON files of `dir`, parsed. @throws Error naming a file that is not JSON. */
function readJsonFiles(dir: string): { file: string; json: unknown }[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => {
      const file = path.join(dir, n);
      try {
        return { file: n, json: JSON.parse(fs.readFileSync(file, 'utf8')) as unknown };
      } catch (err) {
        throw new Error(`${file} is not JSON: ${(err as Error).message}`);
      }
    });
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const arrayOf = (v: unknown): Json[] => (Array.isArray(v) ? v.filter(isObject) : []);

/**
 * Every Prometheus target of every panel of every dashboard in `dir`, rows' panels and old-style `rows[].panels`
 * included, in file order. Targets of another data source type (e.g. Grafana's server-side expressions) and
 * targets without an `expr` are left out; hidden targets are kept (they still feed other queries).
 */
export function dashboardPanelQueries(dir: string): SourcedQuery[] {
  const out: SourcedQuery[] = [];
  for (const { file, json } of readJsonFiles(dir)) {
    const dashboard = isObject(json) && isObject(json.dashboard) ? json.dashboard : json; // an API export wraps it
    if (!isObject(dashboard)) throw new Error(`dashboards/${file}: not a dashboard object`);
    const walk = (panels: Json[]) => {
      for (const panel of panels) {
        for (const target of arrayOf(panel.targets)) {
          const ds = isObject(target.datasource) ? target.datasource : isObject(panel.datasource) ? panel.datasource : undefined;
          if (typeof ds?.type === 'string' && ds.type !== 'prometheus') continue;
          if (typeof target.expr !== 'string' || target.expr.trim() === '') continue;
          const defaults = isObject(panel.fieldConfig) && isObject(panel.fieldConfig.defaults) ? panel.fieldConfig.defaults : {};
          const source = `dashboards/${file}: panel ${JSON.stringify(panel.title ?? '(untitled)')} (${String(target.refId ?? '?')})`;
          out.push({ source, expr: target.expr, ...(typeof defaults.unit === 'string' && { unit: defaults.unit }) });
        }
        walk(arrayOf(panel.panels)); // a row's collapsed panels, or a library panel's
      }
    };
    walk(arrayOf(dashboard.panels));
    for (const row of arrayOf(dashboard.rows)) walk(arrayOf(row.panels));
  }
  return out;
}

/**
 * The series selectors behind each query variable of the dashboards in `dir` (`label_values(vidgate_team_info, team)`
 * gives `vidgate_team_info`; `query_result(expr)` gives `expr`): a variable whose selector matches nothing leaves
 * its dashboard's drop-down empty. `label_values(label)` without a metric selects everything and is left out.
 */
export function dashboardVariableQueries(dir: string): SourcedQuery[] {
  const out: SourcedQuery[] = [];
  for (const { file, json } of readJsonFiles(dir)) {
    const dashboard = isObject(json) && isObject(json.dashboard) ? json.dashboard : json;
    if (!isObject(dashboard) || !isObject(dashboard.templating)) continue;
    for (const v of arrayOf(dashboard.templating.list)) {
      if (v.type !== 'query') continue;
      const text = typeof v.query === 'string' ? v.query : isObject(v.query) && typeof v.query.query === 'string' ? v.query.query : undefined;
      if (!text) continue;
      const selector = /^\s*label_values\(\s*(.+)\s*,\s*\w+\s*\)\s*$/s.exec(text)?.[1] ?? /^\s*query_result\(\s*(.+)\s*\)\s*$/s.exec(text)?.[1];
      if (selector) out.push({ source: `dashboards/${file}: variable $${String(v.name)}`, expr: selector });
    }
  }
  return out;
}

/** The `expr` of every alerting and recording rule of the Prometheus rule files (`*.yml`, `*.yaml`) in `dir`. */
export function alertRuleQueries(dir: string): SourcedQuery[] {
  const out: SourcedQuery[] = [];
  for (const name of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    const doc = YAML.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as unknown;
    for (const group of isObject(doc) ? arrayOf(doc.groups) : []) {
      for (const rule of arrayOf(group.rules)) {
        const expr = rule.expr;
        const id = typeof rule.alert === 'string' ? `alert ${rule.alert}` : `record ${String(rule.record)}`;
        if (typeof expr === 'string') out.push({ source: `alerts/${name}: ${id}`, expr });
        else if (typeof expr === 'number') out.push({ source: `alerts/${name}: ${id}`, expr: String(expr) });
      }
    }
  }
  return out;
}

const BUILTIN = new Set(['__rate_interval', '__interval', '__interval_ms', '__range', '__range_s', '__range_ms', '__auto']);

/**
 * A panel's expr as Grafana would send it for a dashboard showing the whole run with every drop-down on "All":
 * `$__range`, `$__interval` and `$__rate_interval` become the run's length (so a rate or a quantile covers every
 * observation of the run, as the one point of a stat panel would), `$__range_s`/`_ms` and `$__interval_ms` its
 * number; any other variable (`$team`, `${provider}`, `${model:regex}`, `[[team]]`) becomes `.*`, and a label
 * matcher `label="$var"` becomes `label=~".*"` (an equality with `.*` would match nothing).
 */
export function expandTemplate(expr: string, { range_s }: TemplateWindow): string {
  const builtin = (name: string): string | undefined => {
    if (name === '__range' || name === '__interval' || name === '__rate_interval' || name === '__auto') return `${range_s}s`;
    if (name === '__range_s') return String(range_s);
    if (name === '__range_ms' || name === '__interval_ms') return String(range_s * 1000);
    return undefined;
  };
  const variable = String.raw`(?:\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)(?::[\w]+)?\]\])`;
  let out = expr.replace(new RegExp(String.raw`(\w+)\s*(=|!=)\s*"${variable}"`, 'g'), (all, label: string, op: string, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    if (BUILTIN.has(name)) return all;
    return `${label}${op === '=' ? '=~' : '!~'}".*"`;
  });
  out = out.replace(new RegExp(variable, 'g'), (all, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    return BUILTIN.has(name) ? (builtin(name) ?? all) : '.*';
  });
  return out;
}

/**
 * The sub-queries of an alert expression that must each return series for the alert to be able to fire: an alert's
 * expr is normally empty when all is well (its comparison filters everything out), so its threshold is taken off.
 * Rules, applied recursively: outer parentheses go; `a or b`, `a and b`, `a unless b` (with their `on(...)`,
 * `ignoring(...)`, `group_*` modifiers) give the probes of a and of b; a comparison `x > 0.1` (`bool` included)
 * gives the probes of each side that is not a number; `absent(x)` and `absent_over_time(x[5m])` give the probes
 * of x (absent is empty exactly when x has data, which is the state to check). Anything else is one probe, with
 * every comparison to a number inside it taken off too (`(a / b < 0.1) * on(team) group_left(name) info` gives
 * `(a / b) * on(team) group_left(name) info`, so that the join must still match).
 */
export function alertProbes(expr: string): string[] {
  const e = stripOuterParens(expr.trim());
  for (const ops of [['or'], ['and', 'unless'], ['==', '!=', '>=', '<=', '>', '<']]) {
    const parts = splitTopLevel(e, ops);
    if (parts.length > 1) return parts.map(stripModifiers).filter((p) => !isConstant(p)).flatMap(alertProbes);
  }
  const absent = /^absent(?:_over_time)?\s*\(([\s\S]*)\)$/.exec(e);
  if (absent && balanced(absent[1]!)) return alertProbes(absent[1]!.replace(/\[[^\]]*\]\s*$/, ''));
  return [withoutNumberComparisons(e)];
}

/**
 * `e` without its comparisons to a number that closes a group (`x > 0)`, `y < 0.1 )`), wherever they stand, outside
 * strings, label matchers and ranges.
 */
function withoutNumberComparisons(e: string): string {
  // A copy where strings, {...} and [...] are blanked (same length), so that the pattern sees only operators.
  let masked = '';
  let depth = 0;
  for (const { ch, quoted } of scan(e)) {
    if (!quoted && (ch === '{' || ch === '[')) depth++;
    masked += quoted || depth > 0 ? '_' : ch;
    if (!quoted && (ch === '}' || ch === ']')) depth--;
  }
  const comparison = /\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?(?=\s*\))/gi;
  let out = '';
  let last = 0;
  for (const m of masked.matchAll(comparison)) {
    out += e.slice(last, m.index);
    last = m.index + m[0].length;
  }
  return out + e.slice(last);
}

/** Whether the text's parentheses, brackets and braces balance (outside string literals). */
function balanced(text: string): boolean {
  let depth = 0;
  for (const { ch, quoted } of scan(text)) {
    if (quoted) continue;
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch) && --depth < 0) return false;
  }
  return depth === 0;
}

/** The characters of a PromQL text, each marked whether it is inside a string literal ("", '' or ``). */
function* scan(text: string): Generator<{ ch: string; i: number; quoted: boolean }> {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      yield { ch, i, quoted: true };
      if (ch === '\\' && quote !== '`') {
        i++;
        if (i < text.length) yield { ch: text[i]!, i, quoted: true };
      } else if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'" || ch === '`') {
      quote = ch;
      yield { ch, i, quoted: true };
    } else yield { ch, i, quoted: false };
  }
}

function stripOuterParens(e: string): string {
  while (e.startsWith('(') && e.endsWith(')') && balanced(e.slice(1, -1))) e = e.slice(1, -1).trim();
  return e;
}

/** `e` split at every operator of `ops` that stands outside parentheses, brackets, braces and strings. */
function splitTopLevel(e: string, ops: string[]): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  const words = ops.filter((o) => /^\w+$/.test(o));
  const symbols = ops.filter((o) => !/^\w+$/.test(o)).sort((a, b) => b.length - a.length);
  const chars = [...scan(e)];
  for (let k = 0; k < chars.length; k++) {
    const { ch, i, quoted } = chars[k]!;
    if (quoted) continue;
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    if (depth !== 0) continue;
    const word = words.find((w) => e.startsWith(w, i) && !/\w/.test(e[i - 1] ?? '') && !/\w/.test(e[i + w.length] ?? ''));
    const symbol = symbols.find((s) => e.startsWith(s, i) && !(s.length === 1 && (e[i + 1] === '=' || e[i + 1] === '~')));
    const op = word ?? symbol;
    if (!op) continue;
    // `!=` and `=~`/`!~` only occur in braces; `=` alone is no operator at the top level.
    parts.push(e.slice(start, i).trim());
    start = i + op.length;
    while (k + 1 < chars.length && chars[k + 1]!.i < start) k++;
  }
  parts.push(e.slice(start).trim());
  return parts.filter((p) => p !== '');
}

/** A binary operator's right side without its leading modifiers (`bool`, `on(..)`, `ignoring(..)`, `group_left(..)`). */
function stripModifiers(side: string): string {
  return side.replace(/^(?:\s*(?:bool\b|(?:on|ignoring)\s*\([^)]*\)|group_(?:left|right)\b(?:\s*\([^)]*\))?))+/, '').trim();
}

/** Whether a side of a comparison is a number (or arithmetic of numbers), which selects no series. */
function isConstant(side: string): boolean {
  return /^[\d\s.+\-*/()eE]+$/.test(side) || /^[+-]?(Inf|NaN)$/i.test(side);
}
