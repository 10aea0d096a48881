// Chaos across three real replicas on one PostgreSQL schema and one bucket: a client submits a stream of tasks (each
// with a webhook) to whichever replica is up while a seeded schedule SIGKILLs and restarts replicas 20 times.
// Every accepted task completes exactly once, every webhook is delivered, and the ledger needs no correction.
import { afterAll, expect, it } from 'vitest';
import { startFakeOpenAI } from './support/fake-openai';
import { checkTeamLedger } from './support/ledger-check';
import { mp4Renderer } from './support/mp4';
import { newPostgresSchema, openPostgresStore, postgresUrl } from './support/postgres';
import { admin, completionsLogged, killReplica, restartReplica, SHAPE, startReplicas, taskBody } from './support/replicas';
import { startTestS3 } from './support/s3-server';
import { seededRandom } from './support/seeded-random';
import { startWebhookReceiver } from './support/webhook-receiver';

const REPLICAS = 3;
const KILLS = 20;
const SEED = 20261130;
/** Short upstream jobs, so that many finish, and many are caught mid-flight, during the schedule. */
const JOB_MS = 600;
/** The whole test, on a busy 2-core machine where each (re)start compiles the sources with tsx. */
const TEST_TIMEOUT_MS = 420_000;

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c().catch(() => undefined);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = ['completed', 'failed', 'cancelled'];

it('completes every accepted task exactly once, delivers every webhook and keeps the ledger exact across 20 SIGKILLs', async () => {
  const started = Date.now();
  const random = seededRandom(SEED);
  const mp4 = mp4Renderer('testsrc2');
  await mp4(SHAPE);
  const upstream = await startFakeOpenAI({ mp4, jobDurationMs: JOB_MS, honoursIdempotencyKey: true });
  cleanups.push(() => upstream.close());
  const s3 = await startTestS3();
  cleanups.push(() => s3.close());
  let secrets: string[] = [];
  const receiver = await startWebhookReceiver({ secrets: async () => secrets });
  cleanups.push(() => receiver.close());
  const schema = newPostgresSchema();
  const { replicas, cleanup } = await startReplicas(
    {
      postgresUrl: postgresUrl(),
      schema,
      s3,
      upstream: { kind: 'openai', fake: upstream },
      extraEnv: { VIDGATE_OUTBOUND__CA_FILE: receiver.caFile, VIDGATE_OUTBOUND__TRUSTED_ORIGINS: receiver.origin },
    },
    REPLICAS,
  );
  cleanups.unshift(cleanup);
  const store = await openPostgresStore(schema, 2);
  cleanups.unshift(() => store.close());

  const team = await admin<{ id: string }>(replicas[0]!.url, 'POST', '/admin/teams', { name: 'chaos', quotas: { credits_per_day: 10_000_000, submits_per_minute: null, max_concurrent: null } });
  const { key } = await admin<{ key: string }>(replicas[1]!.url, 'POST', `/admin/teams/${team.id}/keys`, { name: 'chaos-key' });
  secrets = [(await admin<{ secret: string }>(replicas[2]!.url, 'POST', `/admin/teams/${team.id}/webhook-secret`, {})).secret];
  const headers = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
  const up = () => replicas.filter((r) => r.process);

  // The submitter: one task at a time to a random replica that is up; a submit that fails (the replica died under
  // it) is sent again, with the same Idempotency-Key, to another, until it is accepted.
  const accepted = new Map<string, string>(); // task id -> prompt
  let retriedSubmits = 0;
  let stop = false;
  const submitter = (async () => {
    for (let i = 0; !stop; i++) {
      const prompt = `chaos task ${i}`;
      const body = JSON.stringify(taskBody(prompt, { callback_url: `${receiver.origin}/hook` }));
      for (let attempt = 0; ; attempt++) {
        const live = up();
        const target = live[Math.floor(random() * live.length)];
        if (!target) {
          await sleep(100);
          continue;
        }
        try {
          const res = await fetch(`${target.url}/v1/videos/generations`, { method: 'POST', headers: { ...headers, 'Idempotency-Key': `chaos-${i}` }, body, signal: AbortSignal.timeout(15_000) });
          const json = (await res.json()) as { id: string };
          if (res.status === 202 || res.status === 200) {
            accepted.set(json.id, prompt);
            break;
          }
          expect.fail(`submit ${i} answered ${res.status}: ${JSON.stringify(json)}`);
        } catch (err) {
          if ((err as Error).name === 'AssertionError') throw err;
          retriedSubmits++;
          await sleep(50);
        }
      }
      await sleep(100 + random() * 200);
    }
  })();

  // The schedule: 20 SIGKILLs of a random replica that is up, each restarted after a short random pause; between
  // two kills, a random pause too. At most one replica is down at a time, so the stream never stops for long.
  const killed: number[] = [];
  for (let k = 0; k < KILLS; k++) {
    await sleep(200 + random() * 800);
    const victim = replicas[Math.floor(random() * REPLICAS)]!;
    killed.push(victim.index);
    await killReplica(victim);
    await sleep(random() * 500);
    await restartReplica(victim);
  }
  stop = true;
  await submitter;
  const scheduleDone = Date.now();

  // Every accepted task becomes terminal; each read goes through a different replica.
  const ids = [...accepted.keys()];
  const deadline = Date.now() + 180_000;
  let tasks: { id: string; status: string; attempts: { outcome: string }[] }[] = [];
  for (let round = 0; ; round++) {
    const url = replicas[round % REPLICAS]!.url;
    tasks = await Promise.all(ids.map(async (id) => (await fetch(`${url}/v1/tasks/${id}`, { headers })).json() as Promise<(typeof tasks)[number]>));
    if (tasks.every((t) => TERMINAL.includes(t.status))) break;
    if (Date.now() > deadline) throw new Error(`not terminal: ${JSON.stringify(tasks.filter((t) => !TERMINAL.includes(t.status)))}`);
    await sleep(250);
  }
  expect(tasks.map((t) => t.status)).toEqual(ids.map(() => 'completed'));

  // Completed by one process: at most one `task completed` line over every process the replicas ran (a process
  // killed between its COMMIT and its log line writes none; the statuses above and the ledger below prove the
  // completion itself).
  const completions = completionsLogged(replicas);
  const doubles = ids.filter((id) => completions.filter((c) => c === id).length > 1);
  expect(doubles).toEqual([]);

  // One upstream job per task: no failover (one provider), and a create whose answer a kill lost is sent again under
  // the task's idempotency key, which the upstream answers with the job it already made.
  const jobsByPrompt = new Map<string, number>();
  for (const job of upstream.jobs.values()) jobsByPrompt.set(job.prompt, (jobsByPrompt.get(job.prompt) ?? 0) + 1);
  const extraJobs = tasks.filter((t) => (jobsByPrompt.get(accepted.get(t.id)!) ?? 0) !== 1);
  expect(extraJobs.map((t) => `${t.id}: ${jobsByPrompt.get(accepted.get(t.id)!) ?? 0} jobs`)).toEqual([]);

  // Every webhook delivered (at least once), signed; one event per task.
  const hookDeadline = Date.now() + 120_000;
  const deliveredTasks = () => new Set(receiver.deliveries.map((d) => (d.body as { id: string }).id));
  while (ids.some((id) => !deliveredTasks().has(id))) {
    if (Date.now() > hookDeadline) throw new Error(`webhooks not delivered: ${ids.filter((id) => !deliveredTasks().has(id)).join(', ')}`);
    await sleep(250);
  }
  expect(receiver.badSignatures).toEqual([]);
  const webhookIds = new Map<string, Set<string>>();
  for (const d of receiver.deliveries) {
    const id = (d.body as { id: string }).id;
    webhookIds.set(id, (webhookIds.get(id) ?? new Set()).add(d.id));
    expect((d.body as { status: string }).status).toBe('completed');
  }
  expect(ids.filter((id) => webhookIds.get(id)!.size !== 1)).toEqual([]);

  // The ledger: each task settled once, the counters agree with it, and verify corrects nothing.
  const ledger = await checkTeamLedger(store, team.id);
  expect(ledger.problems).toEqual([]);
  expect((await admin<{ counters_corrected: number }>(up()[0]!.url, 'POST', '/admin/ledger/verify')).counters_corrected).toBe(0);

  console.info(
    `replica chaos: ${ids.length} tasks accepted, ${retriedSubmits} submits retried, kills per replica ${JSON.stringify([0, 1, 2].map((i) => killed.filter((k) => k === i).length))}, ` +
      `${receiver.deliveries.length} deliveries, ` +
      `schedule ${((scheduleDone - started) / 1000).toFixed(0)} s, total ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  expect(ids.length).toBeGreaterThan(KILLS);
}, TEST_TIMEOUT_MS);
