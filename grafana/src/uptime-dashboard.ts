/**
 * The uptime dashboard: API availability and latency, task success by provider (provider-fault failures only),
 * breaker states, failovers, active health checks, time to video, tasks in flight and queued, and webhooks.
 *
 * Gauges read from the store (`vidgate_tasks_open`, `vidgate_provider_jobs_in_flight`, `vidgate_webhook_outbox_events`)
 * are the same on every instance sharing a store, so they are combined with max(), never sum().
 */
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import {
  ascendingThresholds,
  datasourceRef,
  datasourceVariable,
  descendingThresholds,
  labelVariable,
  quantileTargets,
  seriesPanel,
  statPanel,
  target,
} from './panels';

const providerModel = 'provider=~"$provider", model=~"$model"';

/**
 * Ratio of attempts that succeeded among those that succeeded or failed through the provider's fault, by `by`.
 * Failures that are the request's fault (`fault="request"`: content policy, validation) and cancellations are left out.
 */
function successRatio(by: string, window: string): string {
  const grouping = by === '' ? '' : ` by (${by})`;
  return (
    `sum${grouping} (increase(vidgate_attempts_total{result="succeeded", ${providerModel}}[${window}]))` +
    ` / sum${grouping} (increase(vidgate_attempts_total{result=~"succeeded|failed", fault=~"none|provider", ${providerModel}}[${window}]))`
  );
}

/** The API's requests: every route but the probes (`/metrics` scraped every few seconds, `/healthz`, `/readyz`). */
const API = 'route!~"/metrics|/healthz|/readyz"';

/** Share of API requests answered without a 5xx (counted as the non-5xx, so that no 5xx at all reads 1). */
function availability(window: string): string {
  return (
    `sum(increase(vidgate_http_request_duration_seconds_count{status!~"5..", ${API}}[${window}]))` +
    ` / sum(increase(vidgate_http_request_duration_seconds_count{${API}}[${window}]))`
  );
}

/** Builds the uptime dashboard (uid `vidgate-uptime`). */
export function buildUptimeDashboard(): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder('vidgate / Uptime')
    .uid('vidgate-uptime')
    .description('API availability and latency, provider success and breakers, time to video, queues, webhooks.')
    .tags(['vidgate', 'uptime'])
    .editable()
    .refresh('1m')
    .time({ from: 'now-6h', to: 'now' })
    .timezone('utc')
    .withVariable(datasourceVariable())
    .withVariable(labelVariable('provider', 'Provider', 'label_values(vidgate_attempts_total, provider)'))
    .withVariable(labelVariable('model', 'Model', 'label_values(vidgate_attempts_total, model)'))

    .withRow(new dashboard.RowBuilder('API'))
    .withPanel(
      statPanel(
        'API availability (time range)',
        'Share of HTTP requests answered without a 5xx in the time range.',
        availability('$__range'),
        'percentunit',
      )
        .decimals(3)
        .thresholds(descendingThresholds(0.99, 0.999)),
    )
    .withPanel(
      statPanel(
        'Task success ratio (time range)',
        "Attempts that succeeded among those that succeeded or failed through the provider's fault.",
        successRatio('', '$__range'),
        'percentunit',
      )
        .decimals(3)
        .thresholds(descendingThresholds(0.99, 0.999)),
    )
    .withPanel(
      statPanel(
        'Tasks queued',
        'Tasks pending: waiting for the dispatcher.',
        'max(vidgate_tasks_open{status="pending"})',
        'short',
      ),
    )
    .withPanel(
      statPanel(
        'Tasks in flight',
        'Tasks processing at a provider.',
        'max(vidgate_tasks_open{status="processing"})',
        'short',
      ),
    )
    .withPanel(
      seriesPanel('API availability', 'Share of HTTP requests answered without a 5xx.', 'percentunit', [
        [availability('$__rate_interval'), 'availability'],
      ]).max(1),
    )
    .withPanel(
      seriesPanel(
        'API latency',
        'p50, p95 and p99 of HTTP request duration, all routes but the probes (/metrics, /healthz, /readyz).',
        's',
        quantileTargets('vidgate_http_request_duration_seconds', `{${API}}`),
      ),
    )
    .withPanel(
      seriesPanel('Requests by status (per second)', 'API requests by status code (the probes left out).', 'reqps', [
        [`sum by (status) (rate(vidgate_http_request_duration_seconds_count{${API}}[$__rate_interval]))`, '{{status}}'],
      ]),
    )
    .withPanel(
      seriesPanel('API latency p95 by route', 'p95 of HTTP request duration by route template.', 's', [
        [
          'histogram_quantile(0.95, sum by (le, route) (rate(vidgate_http_request_duration_seconds_bucket[$__rate_interval])))',
          '{{route}}',
        ],
      ]),
    )

    .withRow(new dashboard.RowBuilder('Tasks'))
    .withPanel(
      seriesPanel(
        'Tasks in flight and queued',
        'Tasks pending (queued: waiting for the dispatcher) and processing (in flight at a provider), read from the store.',
        'short',
        [
          ['max(vidgate_tasks_open{status="pending"})', 'queued'],
          ['max(vidgate_tasks_open{status="processing"})', 'in flight'],
        ],
      ),
    )
    .withPanel(
      seriesPanel('Jobs in flight by provider', 'Jobs submitted to each provider and not finished.', 'short', [
        ['max by (provider) (vidgate_provider_jobs_in_flight{provider=~"$provider"})', '{{provider}}'],
      ]),
    )
    .withPanel(
      seriesPanel(
        'Time to video',
        'p50, p95 and p99 from creation to the stored video (completed tasks, cache hits excluded).',
        's',
        quantileTargets('vidgate_task_time_to_video_seconds', `{${providerModel}}`),
      ),
    )
    .withPanel(
      seriesPanel(
        'Queue wait',
        'p50, p95 and p99 from creation to the first submission a provider accepted.',
        's',
        quantileTargets('vidgate_task_queue_wait_seconds', '{model=~"$model"}'),
      ),
    )
    .withPanel(
      seriesPanel('Tasks finished by status (per minute)', 'Tasks that reached completed, failed or cancelled.', 'short', [
        [
          `sum by (status) (rate(vidgate_tasks_finished_total{${providerModel}}[$__rate_interval])) * 60`,
          '{{status}}',
        ],
      ]),
    )
    .withPanel(
      seriesPanel('Time to video p95 by provider', 'p95 from creation to the stored video, by provider.', 's', [
        [
          `histogram_quantile(0.95, sum by (le, provider) (rate(vidgate_task_time_to_video_seconds_bucket{${providerModel}}[$__rate_interval])))`,
          '{{provider}}',
        ],
      ]),
    )

    .withRow(new dashboard.RowBuilder('Providers'))
    .withPanel(
      seriesPanel(
        'Task success ratio by provider',
        "Attempts that succeeded among those that succeeded or failed through the provider's fault (content-policy and validation failures left out).",
        'percentunit',
        [[successRatio('provider', '$__rate_interval'), '{{provider}}']],
      ).max(1),
    )
    .withPanel(
      seriesPanel(
        'Failed attempts by provider and fault (per minute)',
        'fault=provider counts against the provider; fault=request (content policy, validation) never does.',
        'short',
        [
          [
            `sum by (provider, fault) (rate(vidgate_attempts_total{result="failed", ${providerModel}}[$__rate_interval])) * 60`,
            '{{provider}} {{fault}}',
          ],
        ],
      ),
    )
    .withPanel(
      new statetimeline.PanelBuilder()
        .datasource(datasourceRef)
        .title('Breaker states')
        .description('Each provider and model breaker over time: closed, half open or open.')
        .span(24)
        .height(8)
        .mappings([
          {
            type: dashboard.MappingType.ValueToText,
            options: {
              '0': { text: 'closed', color: 'green', index: 0 },
              '1': { text: 'half open', color: 'orange', index: 1 },
              '2': { text: 'open', color: 'red', index: 2 },
            },
          },
        ])
        .thresholds(ascendingThresholds(1, 2))
        .withTarget(
          target(
            'A',
            `max by (provider, model) (vidgate_breaker_state{state="half_open", ${providerModel}}) + 2 * max by (provider, model) (vidgate_breaker_state{state="open", ${providerModel}})`,
            '{{provider}} / {{model}}',
          ),
        ),
    )
    .withPanel(
      seriesPanel(
        'Failovers by provider (per minute)',
        'Tasks that left this provider for the next cheapest after a provider-side failure.',
        'short',
        [
          [
            `sum by (provider) (rate(vidgate_failovers_total{${providerModel}}[$__rate_interval])) * 60`,
            '{{provider}}',
          ],
        ],
      ),
    )
    .withPanel(
      seriesPanel(
        'Active health checks (per minute)',
        'Health checks vidgate runs against providers, by result.',
        'short',
        [
          [
            'sum by (provider, result) (rate(vidgate_health_checks_total{provider=~"$provider"}[$__rate_interval])) * 60',
            '{{provider}} {{result}}',
          ],
        ],
      ),
    )
    .withPanel(
      seriesPanel(
        'Provider call latency p95',
        'p95 of calls to providers, by provider and operation (submit, poll, download, cancel, health_check).',
        's',
        [
          [
            'histogram_quantile(0.95, sum by (le, provider, operation) (rate(vidgate_upstream_request_duration_seconds_bucket{provider=~"$provider"}[$__rate_interval])))',
            '{{provider}} {{operation}}',
          ],
        ],
      ),
    )

    .withRow(new dashboard.RowBuilder('Webhooks'))
    .withPanel(
      seriesPanel('Webhook deliveries (per minute)', 'Delivery attempts: delivered, retried, dead_lettered.', 'short', [
        ['sum by (outcome) (rate(vidgate_webhook_deliveries_total[$__rate_interval])) * 60', '{{outcome}}'],
      ]),
    )
    .withPanel(
      seriesPanel('Webhook outbox', 'Events pending delivery and dead-lettered, read from the store.', 'short', [
        ['max by (state) (vidgate_webhook_outbox_events)', '{{state}}'],
      ]),
    )
    .withPanel(
      statPanel(
        'Dead-lettered deliveries (time range)',
        'Webhook events given up on in the time range.',
        'sum(increase(vidgate_webhook_deliveries_total{outcome="dead_lettered"}[$__range]))',
        'short',
      )
        .span(12)
        .thresholds(ascendingThresholds(1, 10)),
    )
    .withPanel(
      seriesPanel('Webhook delivery latency p95', 'p95 of delivery attempts, by outcome.', 's', [
        [
          'histogram_quantile(0.95, sum by (le, outcome) (rate(vidgate_webhook_delivery_duration_seconds_bucket[$__rate_interval])))',
          '{{outcome}}',
        ],
      ]).height(4),
    );
}
