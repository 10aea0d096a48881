// When the poller asks a provider about a running job again: each job by its own clock, often while it is young
// (most short jobs finish early), then less often, never less often than `max_poll_interval_ms`, and never more
// often than the provider asks (OpenAI-shaped hosts send `openai-poll-after-ms`; upstream-apis.md section 1).
// The frequent polls of young jobs are a nicety: while the provider's poller is behind, every job is polled only as
// often as promised, so that the promise holds for all of them.

/** The settings the schedule follows (`workers.*` in the config). */
export interface PollScheduleConfig {
  /** The shortest wait between two polls of one job, in ms (also the loops' tick). */
  poll_interval_ms: number;
  /** The longest wait between two polls of one job, in ms, unless the provider asks for a longer one. */
  max_poll_interval_ms: number;
}

/** The share of max_poll_interval_ms kept for a poll's own lateness: the claim, and the request reaching the provider. */
const LATENESS_MARGIN = 0.05;

/** A job is polled again after a quarter of its age so far: a job running for 20 s is asked every 5 s. */
const AGE_FRACTION = 4;

/**
 * How long to wait before polling a job again, in ms: a quarter of its age (`jobAgeMs`, since it was submitted),
 * at least poll_interval_ms, and at most 95 % of max_poll_interval_ms less one poll_interval_ms (a due job waits up
 * to one tick of its loop to be claimed, then for the request to reach the provider: the gap between two polls stays
 * within max_poll_interval_ms); at least
 * the provider's `pollAfterMs` hint when it gave one, even above the maximum (the provider's word on its own rate
 * wins). `backlogged`: the poller has more due than it can poll (LeasedLoop.backlogged); the job then waits the
 * longest, whatever its age.
 */
export function nextPollDelayMs(jobAgeMs: number, pollAfterMs: number | undefined, config: PollScheduleConfig, backlogged = false): number {
  const longest = Math.max(config.poll_interval_ms, Math.floor(config.max_poll_interval_ms * (1 - LATENESS_MARGIN)) - config.poll_interval_ms);
  const byAge = backlogged ? longest : Math.min(longest, Math.max(config.poll_interval_ms, Math.floor(Math.max(0, jobAgeMs) / AGE_FRACTION)));
  return Math.max(byAge, pollAfterMs ?? 0);
}
