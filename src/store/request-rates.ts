// Requests per UTC minute (reads_per_minute, submits_per_minute), counted in this process's memory: admitting a
// request writes nothing to the database. Credits and concurrency, which guard money, stay exact and durable in the
// store's counters and ledger; a request rate does not need to.
//
// The bound with several replicas: each process counts only the requests it serves, so a key spread over R
// replicas may get up to R x its limit per minute (exactly its limit with one replica, or behind a load balancer
// that keeps a key on one replica). A restart forgets the current minute's counts: a key may get up to twice its
// limit in the minute of a restart.
import { RATE_QUOTA, type ApiKeyRecord, type RequestAdmission, type RequestKind, type TeamRecord } from './types';

const MINUTE_MS = 60_000;

export interface RequestRates {
  /**
   * Counts one request of this kind against the per-minute limits of the key and of its team, in the UTC minute of
   * `nowMs`; a request refused by either limit counts against neither.
   */
  admit(key: ApiKeyRecord, team: TeamRecord, kind: RequestKind, nowMs: number): RequestAdmission;
  /** Requests of this kind admitted for a team or key in the UTC minute of `nowMs` (0 for any other minute). */
  used(scope: 'team' | 'key', id: string, kind: RequestKind, nowMs: number): number;
}

export function createRequestRates(): RequestRates {
  /** The minute counted (ms since the epoch / 60 000) and its counts by 'kind:scope:id'; older minutes are dropped. */
  let minute = -1;
  let counts = new Map<string, number>();
  const countsOf = (nowMs: number) => {
    const m = Math.floor(nowMs / MINUTE_MS);
    if (m !== minute) [minute, counts] = [m, new Map()];
    return counts;
  };

  return {
    admit(key, team, kind, nowMs) {
      const quota = RATE_QUOTA[kind];
      const current = countsOf(nowMs);
      const scopes = [
        { name: `${kind}:team:${team.id}`, limit: team[quota] },
        { name: `${kind}:key:${key.id}`, limit: key[quota] },
      ].map((s) => ({ ...s, used: current.get(s.name) ?? 0 }));
      const allowed = scopes.every((s) => s.limit === null || s.used + 1 <= s.limit);
      if (allowed) for (const s of scopes) current.set(s.name, ++s.used);
      let tightest: { limit: number; remaining: number } | undefined;
      for (const s of scopes) {
        if (s.limit === null) continue;
        const remaining = Math.max(0, s.limit - s.used);
        if (!tightest || remaining < tightest.remaining) tightest = { limit: s.limit, remaining };
      }
      return { allowed, quota, limit: tightest?.limit ?? null, remaining: tightest?.remaining ?? null };
    },
    used(scope, id, kind, nowMs) {
      return Math.floor(nowMs / MINUTE_MS) === minute ? (counts.get(`${kind}:${scope}:${id}`) ?? 0) : 0;
    },
  };
}
