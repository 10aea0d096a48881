// A synthetic history of vidgate's metrics (docs/metrics.md), as OpenMetrics text for
// `promtool tsdb create-blocks-from openmetrics`: every metric with the label sets the contract names, counters
// growing at known rates, so that tests can check what dashboard panels compute.

/** Scrape step of the history, in seconds. */
export const STEP_S = 15;

/** One series: its labels and its value at `t_s` seconds from the start of the history. */
interface Series {
  name: string;
  labels: Record<string, string>;
  value: (t_s: number) => number;
}

const base = { job: 'vidgate', instance: 'vidgate:8080' };

/** A counter growing at `perSecond`. */
function counter(name: string, labels: Record<string, string>, perSecond: number): Series {
  return { name, labels: { ...base, ...labels }, value: (t) => perSecond * t };
}

/** A gauge holding `value`. */
function gauge(name: string, labels: Record<string, string>, value: number): Series {
  return { name, labels: { ...base, ...labels }, value: () => value };
}

/**
 * A histogram whose observations arrive at `perSecond`, all of `observed_s` seconds: `_bucket` series for `les`
 * (and +Inf), `_count` and `_sum`.
 */
function histogram(name: string, labels: Record<string, string>, perSecond: number, observed_s: number, les: number[]): Series[] {
  return [
    ...[...les, Infinity].map((le) =>
      counter(`${name}_bucket`, { ...labels, le: le === Infinity ? '+Inf' : String(le) }, observed_s <= le ? perSecond : 0),
    ),
    counter(`${name}_count`, labels, perSecond),
    counter(`${name}_sum`, labels, perSecond * observed_s),
  ];
}

/** The USD value of one credit in the history. */
export const CREDIT_VALUE_USD = 0.01;

/**
 * The series. Teams: t1 "Acme", t2 "Beta". Providers: a (healthy), b (breaker open for veo-3), cache. Models: sora-2, veo-3.
 * Rates, per second: settled credits t1/a/sora-2 0.5, t2/b/veo-3 0.25, t1/cache/sora-2 0.05; attempts at a: 1
 * succeeded and 0.01 failed through a's fault; at b: 1 succeeded and 0.5 failed through the request's fault (content
 * policy); provider cost a 0.1 USD for 0.5 video seconds.
 */
export function syntheticSeries(): Series[] {
  const latency = [0.05, 0.5, 5, 60, 600, 3600];
  return [
    ...histogram('vidgate_http_request_duration_seconds', { method: 'GET', route: '/v1/tasks/{id}', status: '200' }, 10, 0.02, latency),
    ...histogram('vidgate_http_request_duration_seconds', { method: 'POST', route: '/v1/videos/generations', status: '500' }, 0.01, 0.3, latency),
    counter('vidgate_tasks_submitted_total', { team: 't1', model: 'sora-2' }, 0.2),
    counter('vidgate_tasks_submitted_total', { team: 't2', model: 'veo-3' }, 0.1),
    counter('vidgate_tasks_finished_total', { team: 't1', status: 'completed', provider: 'a', model: 'sora-2' }, 0.18),
    counter('vidgate_tasks_finished_total', { team: 't1', status: 'completed', provider: 'cache', model: 'sora-2' }, 0.02),
    counter('vidgate_tasks_finished_total', { team: 't2', status: 'failed', provider: 'b', model: 'veo-3' }, 0.01),
    gauge('vidgate_tasks_open', { status: 'pending' }, 12),
    gauge('vidgate_tasks_open', { status: 'processing' }, 30),
    ...histogram('vidgate_task_queue_wait_seconds', { model: 'sora-2' }, 0.2, 3, latency),
    ...histogram('vidgate_task_time_to_video_seconds', { provider: 'a', model: 'sora-2' }, 0.18, 50, latency),
    counter('vidgate_video_seconds_total', { provider: 'a', model: 'sora-2' }, 0.5),
    counter('vidgate_attempts_total', { provider: 'a', model: 'sora-2', stage: 'job', result: 'succeeded', fault: 'none' }, 1),
    counter('vidgate_attempts_total', { provider: 'a', model: 'sora-2', stage: 'job', result: 'failed', fault: 'provider' }, 0.01),
    counter('vidgate_attempts_total', { provider: 'a', model: 'sora-2', stage: 'submit', result: 'failed', fault: 'request' }, 0),
    counter('vidgate_attempts_total', { provider: 'b', model: 'veo-3', stage: 'job', result: 'succeeded', fault: 'none' }, 1),
    counter('vidgate_attempts_total', { provider: 'b', model: 'veo-3', stage: 'job', result: 'failed', fault: 'request' }, 0.5),
    counter('vidgate_attempts_total', { provider: 'b', model: 'veo-3', stage: 'job', result: 'cancelled', fault: 'none' }, 0.1),
    counter('vidgate_failovers_total', { provider: 'b', model: 'veo-3' }, 0.01),
    gauge('vidgate_provider_jobs_in_flight', { provider: 'a' }, 25),
    gauge('vidgate_provider_jobs_in_flight', { provider: 'b' }, 5),
    gauge('vidgate_breaker_state', { provider: 'a', model: 'sora-2', state: 'closed' }, 1),
    gauge('vidgate_breaker_state', { provider: 'a', model: 'sora-2', state: 'half_open' }, 0),
    gauge('vidgate_breaker_state', { provider: 'a', model: 'sora-2', state: 'open' }, 0),
    gauge('vidgate_breaker_state', { provider: 'b', model: 'veo-3', state: 'closed' }, 0),
    gauge('vidgate_breaker_state', { provider: 'b', model: 'veo-3', state: 'half_open' }, 0),
    gauge('vidgate_breaker_state', { provider: 'b', model: 'veo-3', state: 'open' }, 1),
    counter('vidgate_health_checks_total', { provider: 'a', result: 'success' }, 1 / 30),
    counter('vidgate_health_checks_total', { provider: 'b', result: 'failure' }, 1 / 30),
    ...histogram('vidgate_upstream_request_duration_seconds', { provider: 'a', operation: 'submit', outcome: 'success' }, 0.2, 0.4, latency),
    counter('vidgate_credits_total', { kind: 'reserved', team: 't1', provider: 'a', model: 'sora-2' }, 0.6),
    counter('vidgate_credits_total', { kind: 'settled', team: 't1', provider: 'a', model: 'sora-2' }, 0.5),
    counter('vidgate_credits_total', { kind: 'released', team: 't1', provider: 'a', model: 'sora-2' }, 0.1),
    counter('vidgate_credits_total', { kind: 'settled', team: 't1', provider: 'cache', model: 'sora-2' }, 0.05),
    counter('vidgate_credits_total', { kind: 'settled', team: 't2', provider: 'b', model: 'veo-3' }, 0.25),
    gauge('vidgate_credit_value_usd', {}, CREDIT_VALUE_USD),
    counter('vidgate_provider_cost_usd_total', { provider: 'a', model: 'sora-2' }, 0.1),
    counter('vidgate_failover_surcharge_credits_total', { team: 't2', provider: 'b', model: 'veo-3' }, 0.02),
    ...['hit', 'miss', 'coalesced', 'bypassed', 'disabled'].map((result, i) =>
      counter('vidgate_cache_requests_total', { result, team: 't1', model: 'sora-2' }, [0.02, 0.15, 0.03, 0.01, 0][i]!),
    ),
    counter('vidgate_cache_credits_saved_total', { team: 't1', model: 'sora-2' }, 0.4),
    gauge('vidgate_team_reserved_credits', { team: 't1' }, 120),
    gauge('vidgate_team_reserved_credits', { team: 't2' }, 40),
    gauge('vidgate_team_budget_credits', { team: 't1', window: 'month' }, 1000),
    gauge('vidgate_team_budget_remaining_credits', { team: 't1', window: 'month' }, 50),
    gauge('vidgate_team_info', { team: 't1', name: 'Acme' }, 1),
    gauge('vidgate_team_info', { team: 't2', name: 'Beta' }, 1),
    counter('vidgate_webhook_deliveries_total', { outcome: 'delivered' }, 0.2),
    counter('vidgate_webhook_deliveries_total', { outcome: 'retried' }, 0.01),
    counter('vidgate_webhook_deliveries_total', { outcome: 'dead_lettered' }, 0.001),
    ...histogram('vidgate_webhook_delivery_duration_seconds', { outcome: 'success' }, 0.2, 0.1, latency),
    gauge('vidgate_webhook_outbox_events', { state: 'pending' }, 3),
    gauge('vidgate_webhook_outbox_events', { state: 'dead' }, 1),
    counter('vidgate_assets_expired_total', {}, 0.001),
  ];
}

/**
 * The history as OpenMetrics text: every series sampled every STEP_S seconds for `duration_s` seconds, ending at
 * `end_s` (Unix seconds), series after series, ending with `# EOF`.
 */
export function syntheticOpenMetrics(end_s: number, duration_s: number): string {
  const lines: string[] = [];
  const start_s = end_s - duration_s;
  for (const s of syntheticSeries()) {
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}="${v}"`)
      .join(',');
    for (let t = 0; t <= duration_s; t += STEP_S) lines.push(`${s.name}{${labels}} ${s.value(t)} ${start_s + t}`);
  }
  lines.push('# EOF', '');
  return lines.join('\n');
}
