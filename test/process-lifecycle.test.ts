// Starting and stopping the real server process: signals through npm, the drain's readiness window and
// deadline, one-line start errors, and no ffmpeg or temp file outliving a SIGKILL. Linux: reads /proc.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { auth, KEY_A, tempDir, waitFor } from './support/gateway';
import { startServerProcess, type ServerProcess } from './support/process';

const dirs: string[] = [];
const servers: ServerProcess[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.child.kill('SIGKILL');
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = tempDir();
  dirs.push(dir);
  return dir;
}

async function start(env: Record<string, string>, via: 'node' | 'npm' = 'node'): Promise<ServerProcess> {
  const s = await startServerProcess({ VIDGATE_SERVER__PORT: '0', VIDGATE_AUTH__API_KEYS: KEY_A, ...env }, via);
  servers.push(s);
  return s;
}

/** Whether pid runs; a zombie (ended, its parent gone, not yet reaped by init) does not. */
function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Pids of the processes whose command line mentions text. */
function processesMentioning(text: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return fs.readFileSync(`/proc/${n}/cmdline`, 'utf8').includes(text);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** The message a start that fails writes, once it has exited (without the log's JSON lines written before it). */
async function failedStart(env: Record<string, string>): Promise<string> {
  const err = await startServerProcess({ VIDGATE_SERVER__PORT: '0', ...env }).then(
    () => {
      throw new Error('the server started');
    },
    (e: Error) => e,
  );
  expect(err.message).toMatch(/exited \(1\) before listening/);
  const output = err.message.slice(err.message.indexOf('\n') + 1);
  return output.split('\n').filter((line) => !line.startsWith('{')).join('\n').trim();
}

async function submit(url: string, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${url}/v1/videos/generations`, { method: 'POST', headers: { ...auth(KEY_A), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

describe('stopping', () => {
  it('SIGTERM to the npm start process drains the node server and leaves no process behind', async () => {
    const s = await start({ VIDGATE_DATA_DIR: dataDir() }, 'npm');
    const nodePids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(s.child.pid)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
    expect(nodePids).toHaveLength(1);
    expect(fs.readFileSync(`/proc/${nodePids[0]}/cmdline`, 'utf8')).toContain('dist/server/main.mjs');
    // The bundle finds the project's files: the spec (its route and its validation), the page, the reference's script.
    expect(((await (await fetch(`${s.url}/openapi.json`)).json()) as { openapi: string }).openapi).toMatch(/^3\./);
    const refused = await fetch(`${s.url}/v1/videos/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": 7}' });
    expect([refused.status, ((await refused.json()) as { error: { type: string } }).error.type]).toEqual([401, 'authentication_error']);
    expect((await fetch(`${s.url}/playground/`)).status).toBe(200);
    expect((await fetch(`${s.url}/docs/redoc.standalone.js`)).status).toBe(200);
    s.child.kill('SIGTERM');
    await s.exited;
    expect(s.output()).toContain('SIGTERM: draining');
    await waitFor(async () => (isAlive(nodePids[0]!) ? undefined : true), 20_000);
  }, 90_000);

  it('a request that never finishes does not keep the process past the drain deadline', async () => {
    const drainMs = 3000;
    const s = await start({ VIDGATE_DATA_DIR: dataDir(), VIDGATE_SERVER__DRAIN_TIMEOUT_MS: String(drainMs) });
    const { hostname, port } = new URL(s.url);
    const socket = net.connect(Number(port), hostname);
    const socketClosed = new Promise((r) => socket.once('close', r));
    socket.on('error', () => undefined);
    // The headers, and one byte of the 1000 announced.
    socket.write(`POST /v1/videos/generations HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(drainMs - 200); // the request was given its time...
    expect(elapsed).toBeLessThan(drainMs + 15_000); // ...and no more (Node's own request timeout is 300 s)
    await socketClosed;
  }, 90_000);

  it('once the listener is closed, a kept-alive connection is closed after the request it brings: a busy client sends no more work', async () => {
    const s = await start({ VIDGATE_DATA_DIR: dataDir(), VIDGATE_SERVER__DRAIN_READINESS_DELAY_MS: '200', VIDGATE_SERVER__DRAIN_TIMEOUT_MS: '20000' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const body = JSON.stringify({ model: 'sora-2', prompt: 'a busy client', aspect_ratio: '16:9', duration: 4 });
    /** A create on the agent's one connection; `hold` keeps its body unfinished until it resolves. */
    const create = (hold?: Promise<void>) =>
      new Promise<{ status: number; connection?: string; reused: boolean }>((resolve, reject) => {
        const req = http.request(`${s.url}/v1/videos/generations`, { method: 'POST', agent, headers: { ...auth(KEY_A), 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } });
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.write(body.slice(0, 10));
        void (hold ?? Promise.resolve()).then(() => req.end(body.slice(10)));
      });
    expect((await create()).status).toBe(202);
    // A create under way when the drain begins keeps the connection busy past the listener's close.
    let finish!: () => void;
    const inFlight = create(new Promise<void>((r) => (finish = r)));
    s.child.kill('SIGTERM');
    await waitFor(async () => (await fetch(`${s.url}/healthz`).then(() => undefined, () => true)), 10_000); // the listener is closed
    finish();
    expect(await inFlight).toMatchObject({ status: 202, reused: true });
    // The next request on that connection is answered, and says that the connection ends there.
    expect(await create()).toEqual({ status: 202, connection: 'close', reused: true });
    await expect(create()).rejects.toThrow(/ECONNREFUSED/);
    agent.destroy();
    expect(await s.exited).toBe(0);
  }, 90_000);

  it('/readyz answers 503 during the readiness delay, while the server still answers, then the process exits', async () => {
    const s = await start({ VIDGATE_DATA_DIR: dataDir(), VIDGATE_SERVER__DRAIN_READINESS_DELAY_MS: '5000', VIDGATE_SERVER__DRAIN_TIMEOUT_MS: '15000' });
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    s.child.kill('SIGTERM');
    const draining = await waitFor(async () => {
      const res = await fetch(`${s.url}/readyz`);
      return res.status === 503 ? ((await res.json()) as { status: string }) : undefined;
    }, 10_000);
    expect(draining).toEqual({ status: 'draining' });
    // Still served meanwhile: liveness, and an API call.
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${s.url}/v1/models`, { headers: auth(KEY_A) })).status).toBe(200);
    expect(await s.exited).toBe(0);
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  }, 90_000);
});

describe('start errors are one line saying what to do', () => {
  it('a port in use', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const message = await failedStart({ VIDGATE_DATA_DIR: dataDir(), VIDGATE_SERVER__PORT: String(port) });
      expect(message).toBe(`vidgate: port ${port} on 127.0.0.1 is already in use: stop what holds it, or set server.port (VIDGATE_SERVER__PORT) to a free port`);
    } finally {
      holder.close();
    }
  }, 60_000);

  it('a host name that is no address of this machine', async () => {
    const message = await failedStart({ VIDGATE_DATA_DIR: dataDir(), VIDGATE_SERVER__HOST: '999.1.1.1' });
    expect(message).toMatch(/^vidgate: cannot listen on 999\.1\.1\.1, port \d+ \((ENOTFOUND|EAI_AGAIN)\): set server\.host \(VIDGATE_SERVER__HOST\) to an address of this machine, such as 127\.0\.0\.1 or 0\.0\.0\.0$/);
  }, 60_000);

  it('a data directory that cannot be created', async () => {
    const file = path.join(dataDir(), 'a-file');
    fs.writeFileSync(file, '');
    const message = await failedStart({ VIDGATE_DATA_DIR: path.join(file, 'data') });
    expect(message).toBe(`vidgate: cannot write to directory ${path.join(file, 'data')} (ENOTDIR): make it a writable directory, or set data_dir (VIDGATE_DATA_DIR) to one`);
  }, 60_000);

  it('a PostgreSQL store that cannot be reached or does not exist: one line, the password never shown', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const closedPort = (holder.address() as net.AddressInfo).port;
    await new Promise<void>((r) => holder.close(() => r()));
    for (const [url, says] of [
      [`postgres://vidgate:s3cretPW@127.0.0.1:${closedPort}/vidgate`, 'ECONNREFUSED'],
      ['postgres://postgres:s3cretPW@127.0.0.1:5432/vidgate_no_such_db', 'does not exist'],
      ['not a url :s3cretPW@', 'not a valid URL'],
    ]) {
      const message = await failedStart({ VIDGATE_DATA_DIR: dataDir(), VIDGATE_STORE__KIND: 'postgres', DATABASE_URL: url! });
      expect(message).toMatch(/^vidgate: cannot open the PostgreSQL store at .*: check store.url \(DATABASE_URL\) and that the server accepts connections$/);
      expect(message).toContain(says);
      expect(message).not.toContain('s3cretPW');
      expect(message.split('\n')).toHaveLength(1);
    }
  });

  it('a data directory that cannot be written', async () => {
    // Root writes through permission bits, so as root use a file system that refuses new directories.
    let dir = '/sys/vidgate-test-data';
    if (process.getuid?.() !== 0) {
      dir = dataDir();
      fs.chmodSync(dir, 0o555);
    }
    const message = await failedStart({ VIDGATE_DATA_DIR: dir });
    expect(message).toMatch(new RegExp(`^vidgate: cannot write to directory ${dir} \\((EACCES|EPERM|EROFS)\\): make it a writable directory, or set data_dir \\(VIDGATE_DATA_DIR\\) to one$`));
  }, 60_000);
});

describe('the simulated provider across a SIGKILL', () => {
  it('its ffmpeg renders die with the gateway, stale temp files go at start, and its copies are released once stored', async () => {
    const dir = dataDir();
    const workDir = path.join(dir, 'simulated', 'simulated');
    const env = {
      VIDGATE_DATA_DIR: dir,
      VIDGATE_LOG_LEVEL: 'silent',
      VIDGATE_WORKERS__POLL_INTERVAL_MS: '50',
      // The killed gateway's leases end soon, so that the next one takes its tasks over.
      VIDGATE_WORKERS__LEASE_MS: '3000',
      VIDGATE_PROVIDERS: JSON.stringify([{ id: 'simulated', kind: 'simulated', duration_ms: 200, fps: 30 }]),
    };
    let s = await start(env);
    // Renders of some seconds, so that some are running when the gateway is killed.
    const ids = await Promise.all([1, 2, 3].map((i) => submit(s.url, { model: 'sora-2', prompt: `kill ${i}`, duration: 8 })));
    const renders = await waitFor(async () => {
      const pids = processesMentioning(workDir).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('ffmpeg'));
      return pids.length > 0 ? pids : undefined;
    }, 60_000, 20);
    const killed = s.child.pid!;
    s.child.kill('SIGKILL');
    await s.exited;
    await waitFor(async () => (processesMentioning(workDir).length === 0 ? true : undefined), 20_000);
    expect(renders.every((p) => !isAlive(p))).toBe(true);

    // A temp file of the dead process (ffmpeg's may have been removed with it; this one surely is there).
    const tmpDir = path.join(workDir, 'tmp');
    fs.mkdirSync(tmpDir, { recursive: true });
    fs.writeFileSync(path.join(tmpDir, `sim_x.mp4.${killed}.0123456789ab.tmp`), 'partial');
    s = await start(env);
    expect(fs.readdirSync(tmpDir).filter((n) => n.includes(`.${killed}.`))).toEqual([]);

    for (const id of ids) {
      await waitFor(async () => {
        const task = (await (await fetch(`${s.url}/v1/tasks/${id}`, { headers: auth(KEY_A) })).json()) as { status: string };
        expect(task.status).not.toBe('failed');
        return task.status === 'completed' ? true : undefined;
      }, 120_000, 200);
      const video = await fetch(`${s.url}/v1/tasks/${id}/content`, { headers: auth(KEY_A) });
      expect(video.status).toBe(200);
      expect((await video.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
    // The provider's own copies go once the gateway has stored them.
    await waitFor(async () => (fs.readdirSync(path.join(workDir, 'videos')).length === 0 ? true : undefined), 20_000);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  }, 240_000);
});
