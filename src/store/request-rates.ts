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
  /** The minute counted (ms since the epoch / 60 000) and its counts by kind, scope and id; older minutes are dropped. */
  let minute = -1;
  let counts = newCounts();
  const countsOf = (nowMs: number) => {
    const m = Math.floor(nowMs / MINUTE_MS);
    if (m !== minute) [minute, counts] = [m, newCounts()];
    return counts;
  };

  return {
    admit(key, team, kind, nowMs) {
      const quota = RATE_QUOTA[kind];
      const { team: teams, key: keys } = countsOf(nowMs)[kind];
      const teamLimit = team[quota];
      const keyLimit = key[quota];
      let teamUsed = teams.get(team.id) ?? 0;
      let keyUsed = keys.get(key.id) ?? 0;
      const allowed = (teamLimit === null || teamUsed < teamLimit) && (keyLimit === null || keyUsed < keyLimit);
      if (allowed) {
        teams.set(team.id, ++teamUsed);
        keys.set(key.id, ++keyUsed);
      }
      // The tightest limit: the one with the least left (the team's on a tie).
      const teamLeft = teamLimit === null ? Infinity : Math.max(0, teamLimit - teamUsed);
      const keyLeft = keyLimit === null ? Infinity : Math.max(0, keyLimit - keyUsed);
      if (teamLimit === null && keyLimit === null) return { allowed, quota, limit: null, remaining: null };
      return keyLeft < teamLeft ? { allowed, quota, limit: keyLimit, remaining: keyLeft } : { allowed, quota, limit: teamLimit, remaining: teamLeft };
    },
    used(scope, id, kind, nowMs) {
      return Math.floor(nowMs / MINUTE_MS) === minute ? (counts[kind][scope].get(id) ?? 0) : 0;
    },
  };
}

/** Empty counts of one minute: requests by kind, then by team id and by key id. */
function newCounts(): Record<RequestKind, Record<'team' | 'key', Map<string, number>>> {
  return { read: { team: new Map(), key: new Map() }, submit: { team: new Map(), key: new Map() } };
}
