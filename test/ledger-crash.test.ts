// The real server process, killed with SIGKILL at random (seeded) moments while tasks are submitted, fail over
// to a dearer provider, complete, fail and are cancelled, and started again until everything has finished. Then
// the SQLite file itself is checked: every task was settled or released exactly once, no reservation is left
// hanging, the counters agree with the ledger, and the spend equals what the completed tasks settled.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../src/store/sqlite';
import { KEY_A, tempDir } from './support/gateway';
import { checkTeamLedger } from './support/ledger-check';
import { startServerProcess, type ServerProcess } from './support/process';
import { seededRandom } from './support/seeded-random';

const SEED = Number(process.env.LEDGER_CRASH_SEED ?? 20261124);
const CYCLES = 5;

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));


function serverEnv(dataDir: string): Record<string, string> {
  return {
    VIDGATE_DATA_DIR: dataDir,
    VIDGATE_SERVER__PORT: '0',
    VIDGATE_AUTH__API_KEYS: KEY_A,
    VIDGATE_LOG_LEVEL: 'warn',
    // 'cheap' fails about a third of its jobs (retryably), which then fail over to 'dear' and grow their reservation.
    VIDGATE_PROVIDERS: JSON.stringify([
      { id: 'cheap', kind: 'simulated', duration_ms: 500, fps: 4, failure_rate: 0.35, models: [{ model: 'sora-2', usd_per_second: { standard: 0.1 } }] },
      { id: 'dear', kind: 'simulated', duration_ms: 500, fps: 4, models: [{ model: 'sora-2', usd_per_second: { standard: 0.15 } }] },
    ]),
    VIDGATE_WORKERS__POLL_INTERVAL_MS: '50',
    VIDGATE_WORKERS__LEASE_MS: '800',
    VIDGATE_WORKERS__RETRY_BACKOFF_MS: '50',
    // A daily budget that the growths eventually run into, so that some fail with insufficient_quota.
    VIDGATE_TEAMS__DEFAULT_QUOTAS__CREDITS_PER_DAY: '520',
  };
}

const headers = { Authorization: `Bearer ${KEY_A}`, 'Content-Type': 'application/json' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BODY = { model: 'sora-2', aspect_ratio: '16:9', duration: 4 }; // 40 credits on cheap, 60 on dear

async function submit(url: string, prompt: string): Promise<string | undefined> {
  const res = await fetch(`${url}/v1/videos/generations`, { method: 'POST', headers, body: JSON.stringify({ ...BODY, prompt }) });
  return res.status === 202 ? ((await res.json()) as { id: string }).id : undefined;
}

interface Usage {
  totals: { credits: number; tasks: number };
  open_reservations: { task_id: string }[];
  quotas: { team: { max_concurrent: { used: number } } };
}

async function usage(url: string): Promise<Usage> {
  return (await fetch(`${url}/v1/usage`, { headers })).json() as Promise<Usage>;
}

describe('the ledger across crashes', () => {
  it(`settles or releases every task exactly once across SIGKILLs at random moments (seed ${SEED})`, async () => {
    const rng = seededRandom(SEED);
    const dataDir = tempDir();
    dirs.push(dataDir);
    const env = serverEnv(dataDir);
    const accepted = new Set<string>();
    const schedule: string[] = [];
    let server: ServerProcess = await startServerProcess(env);
    let cancelled = 0;

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const url = server.url;
      const submissions = Array.from({ length: 3 }, (_, i) => submit(url, `cycle ${cycle} task ${i}`));
      let delayMs: number;
      if (cycle > 0 && rng() < 0.4) {
        // Kill while the submissions are in flight: some may be stored without their answer arriving.
        delayMs = Math.floor(rng() * 40);
        schedule.push(`cycle ${cycle}: kill ${delayMs} ms into the submissions`);
      } else {
        for (const id of await Promise.all(submissions.map((s) => s.catch(() => undefined)))) if (id) accepted.add(id);
        // Cancel one unfinished task in the first cycle, and sometimes later.
        if (cycle === 0 || rng() < 0.5) {
          const open = (await usage(url)).open_reservations;
          const victim = open[Math.floor(rng() * open.length)];
          if (victim) {
            const res = await fetch(`${url}/v1/tasks/${victim.task_id}/cancel`, { method: 'POST', headers });
            if (res.status === 200) cancelled++;
          }
        }
        delayMs = 50 + Math.floor(rng() * 1500);
        schedule.push(`cycle ${cycle}: kill ${delayMs} ms after the submissions`);
      }
      await sleep(delayMs);
      server.child.kill('SIGKILL');
      await server.exited;
      for (const r of await Promise.allSettled(submissions)) if (r.status === 'fulfilled' && r.value) accepted.add(r.value);
      server = await startServerProcess(env);
    }

    // Let the last process finish everything.
    const deadline = Date.now() + 45_000;
    let final: Usage;
    for (;;) {
      final = await usage(server.url);
      if (final.open_reservations.length === 0) break;
      if (Date.now() > deadline) throw new Error(`tasks still open (seed ${SEED}; ${schedule.join('; ')}): ${JSON.stringify(final.open_reservations)}`);
      await sleep(100);
    }
    expect(final.quotas.team.max_concurrent.used).toBe(0);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);

    const store = createSqliteStore(path.join(dataDir, 'vidgate.db'));
    try {
      const team = await store.findTeamByName('default');
      expect(team).toBeDefined();
      const summary = await checkTeamLedger(store, team!.id);
      expect(summary.problems, `seed ${SEED}; ${schedule.join('; ')}`).toEqual([]);

      // Every task a client saw accepted is there; the others were stored before their answer was lost.
      const ids = new Set(summary.tasks.map((t) => t.id));
      for (const id of accepted) expect(ids.has(id)).toBe(true);
      expect(summary.tasks.length).toBeGreaterThanOrEqual(accepted.size);

      // Each task completed at most once, and only completed tasks have a completed attempt.
      const attempts = await store.listAttempts([...ids]);
      for (const t of summary.tasks) {
        const completedAttempts = attempts.filter((a) => a.task_id === t.id && a.outcome === 'completed').length;
        expect(completedAttempts, t.id).toBe(t.status === 'completed' ? 1 : 0);
        expect(attempts.filter((a) => a.task_id === t.id && a.outcome === 'running'), t.id).toEqual([]);
      }

      // The run exercised what it is meant to: completions, and releases without a settlement.
      expect(summary.completed.length).toBeGreaterThan(0);
      expect(summary.tasks.filter((t) => t.status === 'cancelled').length).toBeGreaterThanOrEqual(Math.min(cancelled, 1));
      expect(summary.tasks.some((t) => t.status !== 'completed')).toBe(true);

      // The usage the API reported is what the completed tasks settled, and the counters need no repair.
      expect(final.totals.credits).toBe(summary.settledTotal);
      expect(final.totals.tasks).toBe(summary.completed.length);
      expect(await store.recomputeUsage()).toBe(0);
    } finally {
      await store.close();
    }
    // About 20 s on an idle machine; restarts of the process take much longer on a loaded one.
  }, 180_000);
});
