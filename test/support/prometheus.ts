// A real Prometheus server (Debian's `prometheus` binary) on 127.0.0.1, with an empty temporary storage, for tests
// that check PromQL: a parse error comes back from /api/v1/query as errorType `bad_data`.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** The answer of Prometheus' HTTP API (/api/v1/query). */
export interface PromApiAnswer {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: unknown[] };
}

export interface PrometheusServer {
  child: ChildProcess;
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /**
   * Runs an instant query (POSTed, so long exprs fit) at `time_s` (Unix seconds; default: now); resolves with
   * Prometheus' answer, errors included.
   */
  query: (expr: string, time_s?: number) => Promise<PromApiAnswer>;
  /** Everything the process wrote so far. */
  output: () => string;
  /** Stops the process (SIGTERM, then SIGKILL after 10 s) and removes its temporary directory. */
  stop: () => Promise<void>;
}

/** A port free on 127.0.0.1 right now (the OS picks it). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface StartPrometheusOptions {
  /** The config file's text. Default: no scrape targets. */
  configYaml?: string;
  /** History to load before starting, as OpenMetrics text (with timestamps), through `promtool tsdb create-blocks-from openmetrics`. */
  backfillOpenMetrics?: string;
  /** How long to wait for /-/ready. Default 45 s (a busy 2-core machine). */
  readyTimeoutMs?: number;
}

/**
 * Starts `prometheus` on a free port of 127.0.0.1 with an empty storage (or the given history) and resolves once
 * /-/ready answers 200. Throws with the process output when it exits or is not ready in time, and with promtool's
 * output when the history does not load.
 */
export async function startPrometheus(options: StartPrometheusOptions = {}): Promise<PrometheusServer> {
  const { configYaml = 'global:\n  scrape_interval: 15s\n', backfillOpenMetrics, readyTimeoutMs = 45_000 } = options;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-prometheus-'));
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), configYaml);
  if (backfillOpenMetrics !== undefined) {
    fs.writeFileSync(path.join(dir, 'history.om'), backfillOpenMetrics);
    try {
      await promisify(execFile)(
        'promtool',
        ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', path.join(dir, 'history.om'), path.join(dir, 'data')],
        { timeout: 60_000 },
      );
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  child.once('error', (err) => (output += `\nspawn error: ${err.message}`));

  const stop = async () => {
    if (exitCode === undefined) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exitCode !== undefined) {
      await stop();
      throw new Error(`prometheus exited (${exitCode}) before it was ready:\n${output}`);
    }
    const ready = await fetch(`${url}/-/ready`).then((r) => r.status === 200, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready after ${readyTimeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  const query = async (expr: string, time_s?: number): Promise<PromApiAnswer> => {
    const params = new URLSearchParams({ query: expr });
    if (time_s !== undefined) params.set('time', String(time_s));
    const res = await fetch(`${url}/api/v1/query`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: params.toString(),
    });
    return (await res.json()) as PromApiAnswer;
  };
  return { child, url, query, output: () => output, stop };
}
