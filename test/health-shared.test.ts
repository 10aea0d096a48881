// Circuit breakers shared by two replicas on one store (an SQLite file opened twice; one PostgreSQL schema opened
// twice): an outage one learns is known to the other after one sync, exactly one of them probes a recovering
// provider, and a dead prober's lease expires. Every decision on an injected clock shared by both.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { captureLogger } from './support/log-capture';
import { createSharedHealth, type SharedHealth } from '../src/core/shared-health';
import type { ModelOffer, NormalizedRequest, ProviderAdapter } from '../src/providers/types';
import type { BreakerConfig } from '../src/routing/health';
import { createRouter } from '../src/routing/router';
import { createSqliteStore } from '../src/store/sqlite';
import type { Store } from '../src/store/types';
import { newPostgresSchema, openPostgresStore } from './support/postgres';

const BREAKER: BreakerConfig = { consecutive_failures: 3, error_ratio: 0.5, window_ms: 60_000, min_calls: 10, cooldown_ms: 30_000, max_cooldown_ms: 120_000 };
const SUBMIT_FAILURE = { reason: 'server_error', stage: 'submit' as const };

const offer = (usd: number): ModelOffer => ({ model: 'm', upstream_model: 'm', sizes: ['1280x720'], durations_s: [4], image_input: false, usd_per_second: { standard: usd } });
const REQUEST: NormalizedRequest = { model: 'm', prompt: 'x', size: '1280x720', duration_s: 4 };
function adapter(id: string, usd: number): ProviderAdapter {
  const unused = () => Promise.reject(new Error('not called'));
  return { id, kind: 'openai', catalog: [offer(usd)], capabilities: { idempotency_keys: false, reference_image: 'bytes' }, submit: unused, poll: unused, download: unused };
}

function describeShared(name: string, openStore: () => Promise<Store>) {
  describe(`breakers shared through the store: ${name}`, () => {
    const opened: Store[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    /** Two replicas, each with its own store connection, on one clock. */
    async function twoReplicas() {
      let t = 1_700_000_000_000;
      const clock = { now: () => t, advance: (ms: number) => (t += ms) };
      const logs: ReturnType<typeof captureLogger>[] = [];
      const replica = async (syncIntervalMs = 1000): Promise<SharedHealth> => {
        const store = await openStore();
        opened.push(store);
        const captured = captureLogger('info');
        logs.push(captured);
        return createSharedHealth({ store, breaker: BREAKER, syncIntervalMs, log: captured.log, now: clock.now });
      };
      const [a, b] = [await replica(), await replica()];
      /** The breaker lines each replica logged: [A's, B's]. */
      const breakerLines = () => logs.slice(0, 2).map((l) => l.entries().filter((e) => e.msg.startsWith('breaker ')).map((e) => [e.msg, e.learned_from_store]));
      /** One poll interval passes: each replica's writes land, then each reads the other's. */
      const syncBoth = async () => {
        clock.advance(1000);
        await Promise.all([a.flush(), b.flush()]);
        await Promise.all([a.sync(), b.sync()]);
      };
      return { a, b, clock, syncBoth, replica, breakerLines };
    }

    /** Opens A's breaker of provider p (A sees the failures; B sees none). */
    const openOn = (r: SharedHealth, p = 'p') => {
      for (let i = 0; i < BREAKER.consecutive_failures; i++) r.health.jobFailed(p, 'm', SUBMIT_FAILURE);
    };

    it('an outage replica A learns opens B too after one sync, until the same time', async () => {
      const { a, b, syncBoth, breakerLines } = await twoReplicas();
      openOn(a);
      expect(a.health.allows('p', 'm')).toBe(false);
      expect(b.health.allows('p', 'm')).toBe(true);
      await syncBoth();
      expect(b.health.allows('p', 'm')).toBe(false);
      const [sa, sb] = [a.health.snapshot('p', 'm'), b.health.snapshot('p', 'm')];
      expect(sb).toMatchObject({ state: 'open', reason: sa.reason, since_ms: sa.since_ms, until_ms: sa.until_ms });
      // B never saw a failure: its window is its own.
      expect(sb.calls).toBe(0);
      // Each logs the opening once: A as it saw it, B as it learnt it from the store.
      expect(breakerLines()).toEqual([[['breaker opened', false]], [['breaker opened', true]]]);
    });

    it('after the cool-down exactly one replica probes; its success closes both after a sync', async () => {
      const { a, b, clock, syncBoth, breakerLines } = await twoReplicas();
      openOn(a);
      await syncBoth();
      clock.advance(BREAKER.cooldown_ms);
      // Both take the probe in process (each its own dispatcher); only one gets the store's lease.
      expect(a.health.tryAcquire('p', 'm', 'task-a')).toBe(true);
      expect(b.health.tryAcquire('p', 'm', 'task-b')).toBe(true);
      const granted = await Promise.all([a.acquireProbe('p', 'm', 'task-a'), b.acquireProbe('p', 'm', 'task-b')]);
      expect(granted.filter(Boolean)).toHaveLength(1);
      const [prober, other] = granted[0] ? [a, b] : [b, a];
      other.health.release('p', 'm', granted[0] ? 'task-b' : 'task-a');
      // The refused one asks again (another task): still refused while the probe is out.
      expect(other.health.tryAcquire('p', 'm', 'task-c')).toBe(true);
      expect(await other.acquireProbe('p', 'm', 'task-c')).toBe(false);
      other.health.release('p', 'm', 'task-c');

      // The probe's job is accepted and running: after a submit-side outage, that closes the breaker.
      prober.health.jobProgressing('p', 'm');
      expect(prober.health.snapshot('p', 'm').state).toBe('closed');
      expect(other.health.snapshot('p', 'm').state).toBe('half_open');
      await syncBoth();
      expect(other.health.snapshot('p', 'm').state).toBe('closed');
      expect(other.health.allows('p', 'm')).toBe(true);
      for (const lines of breakerLines()) expect(lines.map(([msg]) => msg)).toEqual(['breaker opened', 'breaker closed']);
    });

    it('a failed probe reopens both with the doubled cool-down; nobody probes before it ends', async () => {
      const { a, b, clock, syncBoth } = await twoReplicas();
      openOn(a);
      await syncBoth();
      clock.advance(BREAKER.cooldown_ms);
      expect(b.health.tryAcquire('p', 'm', 'task-b')).toBe(true);
      expect(await b.acquireProbe('p', 'm', 'task-b')).toBe(true);
      b.health.jobFailed('p', 'm', SUBMIT_FAILURE);
      const reopened = b.health.snapshot('p', 'm');
      expect(reopened).toMatchObject({ state: 'open', until_ms: reopened.since_ms + 2 * BREAKER.cooldown_ms });
      await syncBoth();
      expect(a.health.snapshot('p', 'm')).toMatchObject({ state: 'open', since_ms: reopened.since_ms, until_ms: reopened.until_ms });
      // A's clock says its old cool-down is long over, the store says the new one is not.
      expect(await a.acquireProbe('p', 'm', 'task-a')).toBe(false);
    });

    it('a probe holder that dies lets the other replica probe once its lease expires; one given back frees it at once', async () => {
      const { a, b, clock, syncBoth } = await twoReplicas();
      openOn(a);
      await syncBoth();
      clock.advance(BREAKER.cooldown_ms);
      expect(a.health.tryAcquire('p', 'm', 'task-a')).toBe(true);
      expect(await a.acquireProbe('p', 'm', 'task-a')).toBe(true);
      // A dies here, holding the probe: no outcome, no release.
      expect(b.health.tryAcquire('p', 'm', 'task-b')).toBe(true);
      expect(await b.acquireProbe('p', 'm', 'task-b')).toBe(false);
      b.health.release('p', 'm', 'task-b');
      clock.advance(BREAKER.max_cooldown_ms - 1);
      expect(b.health.tryAcquire('p', 'm', 'task-c')).toBe(true);
      expect(await b.acquireProbe('p', 'm', 'task-c')).toBe(false);
      b.health.release('p', 'm', 'task-c');
      clock.advance(1);
      expect(b.health.tryAcquire('p', 'm', 'task-d')).toBe(true);
      expect(await b.acquireProbe('p', 'm', 'task-d')).toBe(true);
      // B's attempt does not start (say, its quota): it gives the probe back, and A (alive after all) takes it at once.
      b.health.release('p', 'm', 'task-d');
      await b.flush();
      expect(await a.acquireProbe('p', 'm', 'task-e')).toBe(true);
    });

    it("the dispatchers' routers: one replica probes the cheap provider, the other's task goes to the next", async () => {
      const { a, b, clock, syncBoth } = await twoReplicas();
      const providers = [{ adapter: adapter('p', 0.1) }, { adapter: adapter('q', 0.2) }];
      const ra = createRouter(providers, a.health, { probeLease: a.acquireProbe });
      const rb = createRouter(providers, b.health, { probeLease: b.acquireProbe });
      openOn(a);
      await syncBoth();
      expect(rb.choose(REQUEST)?.adapter.id).toBe('q');
      clock.advance(BREAKER.cooldown_ms);
      const first = (await ra.claim(REQUEST, { holder: 'task-a' }))?.adapter.id;
      const second = (await rb.claim(REQUEST, { holder: 'task-b' }))?.adapter.id;
      expect([first, second]).toEqual(['p', 'q']);
      // B's refused probe was given back in process: its next task is refused by the store again, not by B alone.
      expect((await rb.claim(REQUEST, { holder: 'task-c' }))?.adapter.id).toBe('q');
      // A closed breaker asks the store nothing: q's traffic is never leased.
      expect(b.health.holdsProbe('q', 'm', 'task-b')).toBe(false);
    });

    it("a failing active check on one replica holds the others' probes too", async () => {
      const { a, b, clock, syncBoth } = await twoReplicas();
      openOn(a);
      await syncBoth();
      clock.advance(BREAKER.cooldown_ms);
      // B's check fails: no task probes for 4 s more, on any replica.
      b.health.checkFailed('p', 4000);
      const held = b.health.snapshot('p', 'm');
      expect(held).toMatchObject({ state: 'open', until_ms: clock.now() + 4000 });
      await syncBoth();
      expect(a.health.snapshot('p', 'm')).toMatchObject({ state: 'open', until_ms: held.until_ms });
      expect(a.health.allows('p', 'm')).toBe(false);
      expect(await a.acquireProbe('p', 'm', 'task-a')).toBe(false);
      clock.advance(3000);
      expect(a.health.tryAcquire('p', 'm', 'task-a')).toBe(true);
      expect(await a.acquireProbe('p', 'm', 'task-a')).toBe(true);
    });

    it("a passing check on another replica ends a submit-side outage everywhere, but never a provider's Retry-After", async () => {
      const { a, b, syncBoth } = await twoReplicas();
      openOn(a);
      a.health.jobFailed('r', 'm', { ...SUBMIT_FAILURE, retry_after_ms: 20_000 });
      await syncBoth();
      const pinned = a.health.snapshot('r', 'm');
      expect(b.health.snapshot('r', 'm')).toMatchObject({ state: 'open', until_ms: pinned.until_ms });
      // B's checks pass for both providers.
      b.health.checkSucceeded('p');
      b.health.checkSucceeded('r');
      expect(b.health.snapshot('p', 'm').state).toBe('half_open');
      expect(b.health.snapshot('r', 'm')).toMatchObject({ state: 'open', until_ms: pinned.until_ms });
      await syncBoth();
      expect(a.health.snapshot('p', 'm').state).toBe('half_open');
      expect(a.health.snapshot('r', 'm')).toMatchObject({ state: 'open', until_ms: pinned.until_ms });
    });

    it('the sync loop brings a replica an outage learnt elsewhere on its own (real timers, every 20 ms)', async () => {
      const { a, replica } = await twoReplicas();
      const c = await replica(20);
      c.start();
      try {
        openOn(a);
        await vi.waitFor(() => expect(c.health.allows('p', 'm')).toBe(false), { timeout: 5000, interval: 10 });
      } finally {
        await c.stop();
      }
    });
  });
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-health-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describeShared('sqlite', async () => createSqliteStore(path.join(dir, 'vidgate.db')));

let schema = newPostgresSchema();
beforeEach(() => {
  schema = newPostgresSchema();
});
describeShared('postgres', () => openPostgresStore(schema));
