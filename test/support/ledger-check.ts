// Helpers for the quota and ledger tests: the credits metric read back from /metrics, and the ledger invariants
// checked against a store (returned as a list of problems, so that a failure says which task broke which rule).
import type { LedgerEntry, Store, TaskRecord } from '../../src/store/types';

export interface CreditSample {
  kind: string;
  team: string;
  provider: string;
  model: string;
  value: number;
}

/** The samples of vidgate_credits_total in a Prometheus text exposition. */
export function creditSamples(metricsText: string): CreditSample[] {
  const out: CreditSample[] = [];
  for (const line of metricsText.split('\n')) {
    const m = /^vidgate_credits_total\{([^}]*)\}\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    out.push({ kind: labels.kind!, team: labels.team!, provider: labels.provider!, model: labels.model!, value: Number(m[2]) });
  }
  return out;
}

/** Sum of the samples that match every given label. */
export function sumCredits(samples: CreditSample[], match: Partial<Omit<CreditSample, 'value'>>): number {
  return samples
    .filter((s) => Object.entries(match).every(([k, v]) => s[k as keyof CreditSample] === v))
    .reduce((n, s) => n + s.value, 0);
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const utcMonth = (ms: number) => new Date(ms).toISOString().slice(0, 7);

export interface LedgerSummary {
  tasks: TaskRecord[];
  ledger: LedgerEntry[];
  completed: TaskRecord[];
  settledTotal: number;
  problems: string[];
}

/**
 * Checks, for one team whose tasks have all finished, that every task was settled or released exactly once
 * and that the quota counters agree with the ledger. Does not call recomputeUsage (it repairs what it finds);
 * the caller does, last.
 */
export async function checkTeamLedger(store: Store, teamId: string): Promise<LedgerSummary> {
  const problems: string[] = [];
  const tasks = await store.listTasks({ owner_id: teamId, limit: 100_000, include_deleted: true });
  const ledger = await store.listLedger(teamId);
  const attempts = await store.listAttempts(tasks.map((t) => t.id));
  const byTask = new Map<string, LedgerEntry[]>(tasks.map((t) => [t.id, []]));
  for (const e of ledger) {
    if (e.team_id !== teamId) problems.push(`ledger row ${e.id} of team ${e.team_id} listed for ${teamId}`);
    if (e.task_id === null) {
      if (e.kind !== 'adjust') problems.push(`ledger row ${e.id} (${e.kind}) has no task`);
      continue;
    }
    const rows = byTask.get(e.task_id);
    if (!rows) problems.push(`ledger row ${e.id} (${e.kind}) belongs to unknown task ${e.task_id}`);
    else rows.push(e);
  }

  for (const t of tasks) {
    const rows = byTask.get(t.id)!;
    const of = (kind: string) => rows.filter((r) => r.kind === kind);
    const sum = (rs: LedgerEntry[]) => rs.reduce((n, r) => n + r.credits, 0);
    const reserves = of('reserve');
    const releases = of('release');
    const settles = of('settle');
    const where = `${t.id} (${t.status})`;
    // Hits and followers are served by another task's generation, at the hit price (which may be 0).
    const shared = t.cache_status === 'hit' || t.cache_status === 'coalesced';
    if (!['completed', 'failed', 'cancelled'].includes(t.status)) problems.push(`${where} is not finished`);
    if (reserves.length < 1) problems.push(`${where} has no reserve row`);
    if (reserves.some((r) => r.credits < 0)) problems.push(`${where} has a negative reserve row`);
    // A follower that adopted a cancelled leader's job reserved 0 first, then the job's price.
    if (!shared && sum(reserves) <= 0) problems.push(`${where} generated without reserving`);
    if (sum(reserves) !== t.credits_reserved) problems.push(`${where}: reserve rows sum to ${sum(reserves)}, credits_reserved is ${t.credits_reserved}`);
    if (releases.length !== 1) problems.push(`${where} has ${releases.length} release rows`);
    else if (releases[0]!.credits !== -t.credits_reserved) problems.push(`${where}: release of ${releases[0]!.credits}, reserved ${t.credits_reserved}`);
    if (of('adjust').length) problems.push(`${where} has adjust rows`);
    if (t.status === 'completed') {
      const served = attempts.filter((a) => a.task_id === t.id && a.outcome === 'completed');
      if (settles.length !== 1) problems.push(`${where} has ${settles.length} settle rows`);
      if (served.length !== (shared ? 0 : 1)) problems.push(`${where} (${t.cache_status}) has ${served.length} completed attempts`);
      if (t.credits_settled === null) problems.push(`${where} has no credits_settled`);
      if (settles.length === 1) {
        if (settles[0]!.credits !== t.credits_settled) problems.push(`${where}: settle row of ${settles[0]!.credits}, credits_settled ${t.credits_settled}`);
        if (settles[0]!.provider_id !== t.provider_id) problems.push(`${where}: settled at ${settles[0]!.provider_id}, served by ${t.provider_id}`);
      }
      if (served.length === 1 && served[0]!.credits !== t.credits_settled) {
        problems.push(`${where}: settled ${t.credits_settled}, the serving attempt costs ${served[0]!.credits}`);
      }
      if ((t.credits_settled ?? 0) > t.credits_reserved) problems.push(`${where}: settled ${t.credits_settled} over the reservation ${t.credits_reserved}`);
      if (sum(rows) !== t.credits_settled) problems.push(`${where}: ledger nets ${sum(rows)}, settled ${t.credits_settled}`);
    } else {
      if (settles.length !== 0) problems.push(`${where} has ${settles.length} settle rows`);
      if (t.credits_settled !== null) problems.push(`${where} has credits_settled ${t.credits_settled}`);
      if (sum(rows) !== 0) problems.push(`${where}: ledger nets ${sum(rows)}, expected 0`);
    }
    for (const r of rows) {
      if (r.day !== utcDay(t.created_at_ms)) problems.push(`${where}: row ${r.id} in day ${r.day}`);
      if (r.key_id !== t.key_id) problems.push(`${where}: row ${r.id} charged to key ${r.key_id}, submitted by ${t.key_id}`);
      if (r.model !== t.model) problems.push(`${where}: row ${r.id} for model ${r.model}`);
    }
  }

  // No reservation left hanging, and the counters are what the ledger says.
  const open = await store.listOpenTasks(teamId);
  if (open.length) problems.push(`open tasks: ${open.map((t) => t.id).join(', ')}`);
  const counters = async (scope: 'team' | 'key', id: string, rows: LedgerEntry[]) => {
    for (const day of new Set(rows.map((r) => r.day))) {
      const at = Date.parse(`${day}T12:00:00Z`);
      const used = await store.quotaUsage(scope, id, at);
      const dayTotal = rows.filter((r) => r.day === day).reduce((n, r) => n + r.credits, 0);
      const monthTotal = rows.filter((r) => r.day.startsWith(utcMonth(at))).reduce((n, r) => n + r.credits, 0);
      if (used.credits_day !== dayTotal) problems.push(`${scope} ${id}: day ${day} counter ${used.credits_day}, ledger ${dayTotal}`);
      if (used.credits_month !== monthTotal) problems.push(`${scope} ${id}: month counter ${used.credits_month}, ledger ${monthTotal}`);
      if (used.active_tasks !== 0) problems.push(`${scope} ${id}: ${used.active_tasks} active tasks counted`);
    }
  };
  await counters('team', teamId, ledger);
  for (const keyId of new Set(tasks.map((t) => t.key_id))) await counters('key', keyId, ledger.filter((r) => r.key_id === keyId));

  const completed = tasks.filter((t) => t.status === 'completed');
  const settledTotal = completed.reduce((n, t) => n + (t.credits_settled ?? 0), 0);
  const days = tasks.map((t) => utcDay(t.created_at_ms)).sort();
  if (days.length) {
    const usage = await store.usageByDay(teamId, days[0]!, days.at(-1)!);
    const usageCredits = usage.reduce((n, r) => n + r.credits, 0);
    const usageTasks = usage.reduce((n, r) => n + r.tasks, 0);
    if (usageCredits !== settledTotal) problems.push(`usageByDay sums to ${usageCredits}, completed tasks settled ${settledTotal}`);
    if (usageTasks !== completed.length) problems.push(`usageByDay counts ${usageTasks} tasks, ${completed.length} completed`);
  }
  return { tasks, ledger, completed, settledTotal, problems };
}
