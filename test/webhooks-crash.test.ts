// The real server process, killed with SIGKILL while finished tasks wait in the outbox or their delivery is in
// flight, several times: after the restarts every finished task's event reaches the receiver (signed, verified),
// none is lost, and every attempt of one event carries the same webhook-id.
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, KEY_A, tempDir } from './support/gateway';
import { startServerProcess, type ServerProcess } from './support/process';
import { startWebhookReceiver, type Answer, type Delivery } from './support/webhook-receiver';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const headers = { Authorization: `Bearer ${KEY_A}`, 'Content-Type': 'application/json' };
const admin = { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' };

/** Starting the process compiles the sources with tsx: slow on a busy machine, hence the generous limit. */
const PROCESS_TEST_TIMEOUT_MS = 300_000;

describe('webhooks across crashes', () => {
  it('delivers every event after SIGKILLs between completion and delivery, none lost', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    let secret = '';
    // First every delivery hangs (in flight at the kill), then every one is refused (waiting to be retried at the
    // kill), then the receiver accepts.
    let answer: Answer = 'hang';
    const receiver = await startWebhookReceiver({ secrets: async () => [secret], answer: () => answer });
    const env = {
      VIDGATE_DATA_DIR: dataDir,
      VIDGATE_SERVER__PORT: '0',
      VIDGATE_AUTH__API_KEYS: KEY_A,
      VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN,
      VIDGATE_LOG_LEVEL: 'info',
      VIDGATE_PROVIDERS: JSON.stringify([{ id: 'simulated', kind: 'simulated', duration_ms: 1000, fps: 4 }]),
      VIDGATE_WORKERS__POLL_INTERVAL_MS: '100',
      VIDGATE_WORKERS__LEASE_MS: '1000',
      VIDGATE_OUTBOUND__TRUSTED_ORIGINS: receiver.origin,
      VIDGATE_OUTBOUND__CA_FILE: receiver.caFile,
      VIDGATE_WEBHOOKS__RETRY_SCHEDULE_MS: JSON.stringify([300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300]),
      VIDGATE_WEBHOOKS__TIMEOUT_MS: '3000',
      VIDGATE_WEBHOOKS__LEASE_MS: '1000',
      VIDGATE_WEBHOOKS__POLL_INTERVAL_MS: '100',
    };
    let server: ServerProcess = await startServerProcess(env);
    try {
      const teams = (await (await fetch(`${server.url}/admin/teams`, { headers: admin })).json()) as { data: { id: string; name: string }[] };
      const team = teams.data.find((t) => t.name === 'default')!.id;
      const rotated = await fetch(`${server.url}/admin/teams/${team}/webhook-secret`, { method: 'POST', headers: admin, body: '{}' });
      secret = ((await rotated.json()) as { secret: string }).secret;

      const ids: string[] = [];
      const submit = async (prompt: string) => {
        const body = { prompt, duration: 4, callback_url: `${receiver.origin}/hook` };
        const res = await fetch(`${server.url}/v1/videos/generations`, { method: 'POST', headers, body: JSON.stringify(body) });
        expect(res.status).toBe(202);
        ids.push(((await res.json()) as { id: string }).id);
      };
      for (let i = 0; i < 4; i++) await submit(`crash ${i}`);

      // Kill once deliveries hang in flight, then again while refused ones wait for their retry, submitting
      // more work each time so that completions keep landing around the kills.
      for (const [phase, next] of [['hang', 'refuse'], ['refuse', 'refuse'], ['refuse', 'accept']] as const) {
        await waitUntil(() => receiver.deliveries.length > 0 || phase !== 'hang', 60_000);
        await sleep(1200);
        server.child.kill('SIGKILL');
        await server.exited;
        answer = next === 'accept' ? 200 : 503;
        server = await startServerProcess(env);
        await submit(`after ${phase}`);
      }

      // Every task finishes, and every finish reaches the receiver.
      await waitUntil(async () => {
        const tasks = await Promise.all(ids.map(async (id) => (await (await fetch(`${server.url}/v1/tasks/${id}`, { headers })).json()) as { status: string }));
        return tasks.every((t) => t.status === 'completed');
      }, 120_000);
      const accepted = (d: Delivery) => (d.body as { id: string }).id;
      await waitUntil(async () => {
        for (const id of ids) {
          const res = (await (await fetch(`${server.url}/v1/tasks/${id}/deliveries`, { headers })).json()) as { data: { state: string }[] };
          if (res.data.length !== 1 || res.data[0]!.state !== 'delivered') return false;
        }
        return true;
      }, 120_000);

      const byTask = new Map<string, Delivery[]>();
      for (const d of receiver.deliveries) byTask.set(accepted(d), [...(byTask.get(accepted(d)) ?? []), d]);
      expect([...byTask.keys()].sort()).toEqual([...ids].sort());
      for (const [id, ds] of byTask) {
        expect(new Set(ds.map((d) => d.id)).size, `one webhook-id for ${id}`).toBe(1);
        expect((ds.at(-1)!.body as { status: string }).status).toBe('completed');
      }
      // Some deliveries were cut by a kill or refused, and were tried again: at least once, not exactly once.
      expect(receiver.deliveries.length).toBeGreaterThan(ids.length);
      expect(receiver.badSignatures).toEqual([]);
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    } finally {
      server.child.kill('SIGKILL');
      await receiver.close();
    }
  }, PROCESS_TEST_TIMEOUT_MS);
});

async function waitUntil(probe: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(100);
  }
}
