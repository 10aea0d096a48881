/**
 * The cost dashboard: what teams spend (USD and credits, by team, model and provider), their budgets, what the cache
 * and coalescing saved, the failover surcharge, and the price of a second of video.
 *
 * Spend is what the ledger settled (`vidgate_credits_total{kind="settled"}`); USD is credits × `vidgate_credit_value_usd`.
 * What the operator pays providers is `vidgate_provider_cost_usd_total` (USD already).
 */
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import {
  ascendingThresholds,
  creditValueUsd,
  datasourceRef,
  datasourceVariable,
  labelVariable,
  target,
  seriesPanel,
  statPanel,
  withTeamName,
} from './panels';

/** The cost dashboard's stat panels: three in a row. */
const costStat = (title: string, description: string, expr: string, unit: string) => statPanel(title, description, expr, unit, 8);

const teamModelProvider = 'team=~"$team", provider=~"$provider", model=~"$model"';
const settled = `vidgate_credits_total{kind="settled", ${teamModelProvider}}`;

/** A horizontal bar gauge with one instant target, one bar per series. */
function barsPanel(title: string, description: string, unit: string, expr: string, legend: string): bargauge.PanelBuilder {
  return new bargauge.PanelBuilder()
    .datasource(datasourceRef)
    .title(title)
    .description(description)
    .unit(unit)
    .min(0)
    .span(8)
    .height(8)
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Gradient)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .withTarget(target('A', expr, legend, true));
}

/** Settled credits per hour grouped by `by`, in USD. */
function usdPerHourBy(by: string): string {
  return `sum by (${by}) (rate(${settled}[$__rate_interval])) * 3600 * ${creditValueUsd}`;
}

/** Builds the cost dashboard (uid `vidgate-cost`). */
export function buildCostDashboard(): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder('vidgate / Cost')
    .uid('vidgate-cost')
    .description('Spend by team, model and provider; budgets; cache savings; failover surcharge; price per video second.')
    .tags(['vidgate', 'cost'])
    .editable()
    .refresh('1m')
    .time({ from: 'now-24h', to: 'now' })
    .timezone('utc')
    .withVariable(datasourceVariable())
    .withVariable(
      labelVariable(
        'team',
        'Team',
        'query_result(max by (team, name) (vidgate_team_info))',
        '/name="(?<text>[^"]*)".*team="(?<value>[^"]*)"/',
      ),
    )
    .withVariable(labelVariable('provider', 'Provider', 'label_values(vidgate_credits_total, provider)'))
    .withVariable(labelVariable('model', 'Model', 'label_values(vidgate_credits_total, model)'))

    .withRow(new dashboard.RowBuilder('Spend'))
    .withPanel(
      costStat(
        'Spend in USD (time range)',
        'Credits settled in the time range, times the USD value of a credit.',
        `sum(increase(${settled}[$__range])) * ${creditValueUsd}`,
        'currencyUSD',
      ),
    )
    .withPanel(
      costStat(
        'Spend in credits (time range)',
        'Credits settled in the time range (what teams were charged).',
        `sum(increase(${settled}[$__range]))`,
        'short',
      ),
    )
    .withPanel(
      costStat(
        'Paid to providers in USD (time range)',
        "What the operator pays providers for completed jobs, from each provider's usd_per_second.",
        `sum(increase(vidgate_provider_cost_usd_total{provider=~"$provider", model=~"$model"}[$__range]))`,
        'currencyUSD',
      ),
    )
    .withPanel(
      seriesPanel('Spend by team (USD per hour)', 'Settled credits per hour, in USD, by team name.', 'currencyUSD', [
        [withTeamName(usdPerHourBy('team')), '{{name}}'],
      ]),
    )
    .withPanel(
      seriesPanel('Spend by model (USD per hour)', 'Settled credits per hour, in USD, by model.', 'currencyUSD', [
        [usdPerHourBy('model'), '{{model}}'],
      ]),
    )
    .withPanel(
      seriesPanel(
        'Spend by provider (USD per hour)',
        'Settled credits per hour, in USD, by the provider that made the video (cache for a cache hit).',
        'currencyUSD',
        [[usdPerHourBy('provider'), '{{provider}}']],
      ),
    )
    .withPanel(
      seriesPanel(
        'Paid to providers (USD per hour)',
        'What the operator pays each provider per hour.',
        'currencyUSD',
        [
          [
            `sum by (provider) (rate(vidgate_provider_cost_usd_total{provider=~"$provider", model=~"$model"}[$__rate_interval])) * 3600`,
            '{{provider}}',
          ],
        ],
      ),
    )
    .withPanel(
      barsPanel(
        'Spend by team in USD (time range)',
        'Credits settled in the time range, in USD, by team name.',
        'currencyUSD',
        withTeamName(`sum by (team) (increase(${settled}[$__range])) * ${creditValueUsd}`),
        '{{name}}',
      ),
    )
    .withPanel(
      barsPanel(
        'Spend by team in credits (time range)',
        'Credits settled in the time range, by team name.',
        'short',
        withTeamName(`sum by (team) (increase(${settled}[$__range]))`),
        '{{name}}',
      ),
    )
    .withPanel(
      barsPanel(
        'Spend by model in USD (time range)',
        'Credits settled in the time range, in USD, by model.',
        'currencyUSD',
        `sum by (model) (increase(${settled}[$__range])) * ${creditValueUsd}`,
        '{{model}}',
      ),
    )

    .withRow(new dashboard.RowBuilder('Budgets'))
    .withPanel(
      barsPanel(
        'Budget used',
        "Share of each team's day or month budget used in the current UTC window.",
        'percentunit',
        withTeamName(
          `1 - max by (team, window) (vidgate_team_budget_remaining_credits{team=~"$team"}) / max by (team, window) (vidgate_team_budget_credits{team=~"$team"})`,
        ),
        '{{name}} ({{window}})',
      )
        .max(1)
        .thresholds(ascendingThresholds(0.8, 0.9)),
    )
    .withPanel(
      barsPanel(
        'Budget remaining (credits)',
        "What is left of each team's day or month budget in the current UTC window.",
        'short',
        withTeamName(`max by (team, window) (vidgate_team_budget_remaining_credits{team=~"$team"})`),
        '{{name}} ({{window}})',
      ),
    )
    .withPanel(
      barsPanel(
        'Budget (credits)',
        "Each team's credit budget per day or month (only teams with one).",
        'short',
        withTeamName(`max by (team, window) (vidgate_team_budget_credits{team=~"$team"})`),
        '{{name}} ({{window}})',
      ),
    )
    .withPanel(
      seriesPanel(
        'Credits reserved by unfinished tasks',
        "Credits held by each team's tasks that have not finished yet.",
        'short',
        [[withTeamName(`max by (team) (vidgate_team_reserved_credits{team=~"$team"})`), '{{name}}']],
      ),
    )
    .withPanel(
      seriesPanel(
        'Budget remaining over time (credits)',
        "What is left of each team's budget in the current UTC window.",
        'short',
        [[withTeamName(`max by (team, window) (vidgate_team_budget_remaining_credits{team=~"$team"})`), '{{name}} ({{window}})']],
      ),
    )

    .withRow(new dashboard.RowBuilder('Cache and coalescing'))
    .withPanel(
      costStat(
        'Cache hit ratio (time range)',
        'Hits among the requests the cache looked up (hit, miss, coalesced); bypassed and disabled left out.',
        `sum(increase(vidgate_cache_requests_total{result="hit", team=~"$team", model=~"$model"}[$__range])) / sum(increase(vidgate_cache_requests_total{result=~"hit|miss|coalesced", team=~"$team", model=~"$model"}[$__range]))`,
        'percentunit',
      ),
    )
    .withPanel(
      costStat(
        'Coalesced requests (time range)',
        'Requests that joined an identical request already running instead of generating again.',
        `sum(increase(vidgate_cache_requests_total{result="coalesced", team=~"$team", model=~"$model"}[$__range]))`,
        'short',
      ),
    )
    .withPanel(
      costStat(
        'Saved by cache and coalescing in USD (time range)',
        'Credits a generation would have cost, less what a hit or follower was charged, in USD.',
        `sum(increase(vidgate_cache_credits_saved_total{team=~"$team", model=~"$model"}[$__range])) * ${creditValueUsd}`,
        'currencyUSD',
      ),
    )
    .withPanel(
      seriesPanel('Requests by cache result (per second)', 'How the cache served requests.', 'reqps', [
        [
          `sum by (result) (rate(vidgate_cache_requests_total{team=~"$team", model=~"$model"}[$__rate_interval]))`,
          '{{result}}',
        ],
      ]),
    )
    .withPanel(
      seriesPanel('Saved by team (USD per hour)', 'Cache and coalescing savings per hour, in USD, by team name.', 'currencyUSD', [
        [
          withTeamName(
            `sum by (team) (rate(vidgate_cache_credits_saved_total{team=~"$team", model=~"$model"}[$__rate_interval])) * 3600 * ${creditValueUsd}`,
          ),
          '{{name}}',
        ],
      ]),
    )

    .withRow(new dashboard.RowBuilder('Failover surcharge and unit price'))
    .withPanel(
      costStat(
        'Failover surcharge in USD (time range)',
        'Credits reservations grew by when a failover went to a pricier provider, in USD.',
        `sum(increase(vidgate_failover_surcharge_credits_total{${teamModelProvider}}[$__range])) * ${creditValueUsd}`,
        'currencyUSD',
      ),
    )
    .withPanel(
      costStat(
        'Failover surcharge in credits (time range)',
        'Credits reservations grew by when a failover went to a pricier provider.',
        `sum(increase(vidgate_failover_surcharge_credits_total{${teamModelProvider}}[$__range]))`,
        'short',
      ),
    )
    .withPanel(
      costStat(
        'Paid per video second in USD (time range)',
        'What the operator paid providers per second of video generated (cache hits excluded).',
        `sum(increase(vidgate_provider_cost_usd_total{provider=~"$provider", model=~"$model"}[$__range])) / sum(increase(vidgate_video_seconds_total{provider=~"$provider", model=~"$model"}[$__range]))`,
        'currencyUSD',
      ),
    )
    .withPanel(
      seriesPanel(
        'Failover surcharge by provider (USD per hour)',
        'Surcharge per hour, in USD, by the pricier provider the task failed over to.',
        'currencyUSD',
        [
          [
            `sum by (provider) (rate(vidgate_failover_surcharge_credits_total{${teamModelProvider}}[$__rate_interval])) * 3600 * ${creditValueUsd}`,
            '{{provider}}',
          ],
        ],
      ),
    )
    .withPanel(
      seriesPanel(
        'Price per video second (USD)',
        'Paid to each provider, and charged to teams for each model, per second of video generated (cache hits excluded on both sides; all teams, whatever the team variable).',
        'currencyUSD',
        [
          [
            `sum by (provider) (rate(vidgate_provider_cost_usd_total{provider=~"$provider", model=~"$model"}[$__rate_interval])) / sum by (provider) (rate(vidgate_video_seconds_total{provider=~"$provider", model=~"$model"}[$__rate_interval]))`,
            'paid to {{provider}}',
          ],
          [
            `sum by (model) (rate(vidgate_credits_total{kind="settled", provider!="cache", provider=~"$provider", model=~"$model"}[$__rate_interval])) * ${creditValueUsd} / sum by (model) (rate(vidgate_video_seconds_total{provider=~"$provider", model=~"$model"}[$__rate_interval]))`,
            'charged for {{model}}',
          ],
        ],
      ),
    );
}
