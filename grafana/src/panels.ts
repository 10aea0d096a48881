/**
 * Small helpers the vidgate dashboards are built from, on top of `@grafana/grafana-foundation-sdk`.
 *
 * Every panel reads the Prometheus data source chosen by the `datasource` template variable, and every query is plain
 * PromQL over the metrics named in docs/metrics.md (the contract: a name changes there first).
 */
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

/** The data source every panel and variable queries: the one picked in the `datasource` variable. */
export const datasourceRef: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** USD value of one credit, as a scalar (max() so that several vidgate instances behind one job still give one). */
export const creditValueUsd = 'scalar(max(vidgate_credit_value_usd))';

/**
 * Wraps a vector that keeps a `team` label (the team id) so that each series also carries the team's `name`, from
 * `vidgate_team_info` (value 1, so the value is unchanged). Series of a team with no info series are dropped.
 */
export function withTeamName(expr: string): string {
  return `(${expr}) * on(team) group_left(name) max by (team, name) (vidgate_team_info)`;
}

/** A Prometheus target: `expr` with its legend (`{{label}}` placeholders), as a range query unless `instant`. */
export function target(refId: string, expr: string, legend: string, instant = false): prometheus.DataqueryBuilder {
  const query = new prometheus.DataqueryBuilder().refId(refId).datasource(datasourceRef).expr(expr).legendFormat(legend);
  return instant ? query.instant() : query.range();
}

/** The three quantiles (p50, p95, p99) of a histogram `metric` (its `_bucket` series), summed by `le` and `by`. */
export function quantileTargets(metric: string, selector: string, by: string[] = []): prometheus.DataqueryBuilder[] {
  const grouping = ['le', ...by].join(', ');
  const prefix = by.map((label) => `{{${label}}} `).join('');
  return [0.5, 0.95, 0.99].map((q, i) =>
    target(
      String.fromCharCode(65 + i),
      `histogram_quantile(${q}, sum by (${grouping}) (rate(${metric}_bucket${selector}[$__rate_interval])))`,
      `${prefix}p${Math.round(q * 100)}`,
    ),
  );
}

/** Thresholds: green below `warn`, orange from `warn`, red from `bad` (ascending values). */
export function ascendingThresholds(warn: number, bad: number): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps([
    { value: null, color: 'green' },
    { value: warn, color: 'orange' },
    { value: bad, color: 'red' },
  ]);
}

/** Thresholds: red below `bad`, orange below `warn`, green from `warn` (descending: higher is better). */
export function descendingThresholds(bad: number, warn: number): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps([
    { value: null, color: 'red' },
    { value: bad, color: 'orange' },
    { value: warn, color: 'green' },
  ]);
}

/** A legend shown as a table at the bottom with the mean and last values. */
export function tableLegend(): common.VizLegendOptionsBuilder {
  return new common.VizLegendOptionsBuilder()
    .showLegend(true)
    .displayMode(common.LegendDisplayMode.Table)
    .placement(common.LegendPlacement.Bottom)
    .calcs(['mean', 'lastNotNull']);
}

/** The `datasource` variable: any Prometheus data source (the provisioned one is named Prometheus). */
export function datasourceVariable(): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus');
}

/**
 * A multi-value query variable over one label's values (all selected by default). Queries match it with
 * `label=~"$name"`; "All" stands for `.*`, so series without the label (e.g. `metrics.team_label: false`) still match.
 */
export function labelVariable(name: string, label: string, query: string, regex?: string): dashboard.QueryVariableBuilder {
  const variable = new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(datasourceRef)
    .query({ query, refId: `${name}-variable` })
    .definition(query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalCaseInsensitiveAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*')
    .current({ selected: true, text: ['All'], value: ['$__all'] });
  return regex === undefined ? variable : variable.regex(regex);
}

/** A stat panel with one instant target, `span` columns wide (of 24; four in a row by default). */
export function statPanel(title: string, description: string, expr: string, unit: string, span = 6): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .datasource(datasourceRef)
    .title(title)
    .description(description)
    .unit(unit)
    .span(span)
    .height(4)
    .graphMode(common.BigValueGraphMode.None)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .withTarget(target('A', expr, title, true));
}

/** A time series panel with the given targets (refIds A, B, …). */
export function seriesPanel(
  title: string,
  description: string,
  unit: string,
  targets: [string, string][] | prometheus.DataqueryBuilder[],
): timeseries.PanelBuilder {
  const panel = new timeseries.PanelBuilder()
    .datasource(datasourceRef)
    .title(title)
    .description(description)
    .unit(unit)
    .min(0)
    .span(12)
    .height(8)
    .fillOpacity(10)
    .legend(tableLegend());
  targets.forEach((t, i) =>
    panel.withTarget(Array.isArray(t) ? target(String.fromCharCode(65 + i), t[0], t[1]) : t),
  );
  return panel;
}
