// A real Prometheus server (Debian's /usr/bin/prometheus) scraping one target every second, for the
// observability end-to-end test: started on a free 127.0.0.1 port with a temporary config and TSDB, queried
// through its HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/), with the scrape times and raw
// samples a test of counters across restarts needs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './free-port';
import { tempDir } from './gateway';

/** One series of an instant query: its labels and its value (NaN, +Inf and -Inf included, as numbers). */
export interface InstantSample {
  metric: Record<string, string>;
  /** Unix seconds of the evaluation. */
  time_s: number;
  value: number;
}

/** One series of a range selector: its labels and its raw samples, oldest first. */
export interface RangeSeries {
  metric: Record<string, string>;
  samples: { time_s: number; value: number }[];
}

export interface PrometheusServer {
  /** e.g. 'http://127.0.0.1:40123'. */
  url: string;
  /**
   * Evaluates `expr` at `time_s` (default: now) with /api/v1/query.
   * @throws Error with Prometheus' message when the query is refused (bad syntax, execution error), or when
   *   the result is a range vector (use `rawSamples`).
   */
  query(expr: string, time_s?: number): Promise<InstantSample[]>;
  /** The raw samples of a range selector such as `metric{a="b"}[5m]`, evaluated at `time_s` (default now). */
  rawSamples(selector: string, time_s?: number): Promise<RangeSeries[]>;
  /**
   * Waits until Prometheus has finished a scrape of the target that began after `after_ms` (epoch ms), and
   * returns that scrape's time in Unix seconds (the timestamp of its `up` sample). Throws after `timeout_ms`.
   */
  scrapedAfter(after_ms: number, timeout_ms?: number): Promise<number>;
  /** Everything the process wrote to stderr and stdout (its logs), for failure messages. */
  output(): string;
  /** Kills the process (SIGKILL: its TSDB is thrown away) and deletes its directory. */
  close(): Promise<void>;
}

export interface PrometheusOptions {
  /** `host:port` of the target, scraped at /metrics. */
  target: string;
  /** The job label of the target. Default 'vidgate'. */
  job?: string;
  /** The binary; default $PROMETHEUS_BIN or `prometheus` on the PATH. */
  binary?: string;
  /** How long to wait for /-/ready. Default 60 s (a busy 2-core machine). */
  ready_timeout_ms?: number;
}

/**
 * Starts Prometheus scraping `target` every second, and resolves once it answers /-/ready.
 * @throws Error with its output when it exits or is not ready in time (it is killed then).
 */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const job = options.job ?? 'vidgate';
  const dir = tempDir('vidgate-prometheus-');
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    `  - job_name: ${job}`,
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: ['${options.target}']`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    options.binary ?? process.env.PROMETHEUS_BIN ?? 'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  child.once('error', (err) => (output += `\nspawn error: ${err.message}`));

  const close = async () => {
    if (!exited) {
      child.kill('SIGKILL');
      await exit;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.ready_timeout_ms ?? 60_000);
  for (;;) {
    if (exited) {
      await close();
      throw new Error(`prometheus exited before it was ready:\n${output}`);
    }
    const ready = await fetch(`${url}/-/ready`).then((r) => r.status === 200, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await close();
      throw new Error(`prometheus not ready after ${options.ready_timeout_ms ?? 60_000} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  async function api(expr: string, time_s: number | undefined): Promise<{ resultType: string; result: unknown[] }> {
    const params = new URLSearchParams({ query: expr, ...(time_s !== undefined && { time: String(time_s) }) });
    const res = await fetch(`${url}/api/v1/query`, { method: 'POST', body: params });
    const body = (await res.json()) as { status: string; data?: { resultType: string; result: unknown[] }; error?: string; errorType?: string };
    if (body.status !== 'success' || !body.data) throw new Error(`prometheus refused ${JSON.stringify(expr)}: ${body.errorType}: ${body.error}`);
    return body.data;
  }

  const server: PrometheusServer = {
    url,
    async query(expr, time_s) {
      const data = await api(expr, time_s);
      if (data.resultType === 'scalar') {
        const [t, v] = data.result as unknown as [number, string];
        return [{ metric: {}, time_s: t, value: Number(v) }];
      }
      if (data.resultType !== 'vector') throw new Error(`${expr} is a ${data.resultType}, not an instant vector`);
      return (data.result as { metric: Record<string, string>; value: [number, string] }[]).map((r) => ({ metric: r.metric, time_s: r.value[0], value: Number(r.value[1]) }));
    },
    async rawSamples(selector, time_s) {
      const data = await api(selector, time_s);
      if (data.resultType !== 'matrix') throw new Error(`${selector} is a ${data.resultType}, not a range vector`);
      return (data.result as { metric: Record<string, string>; values: [number, string][] }[]).map((r) => ({
        metric: r.metric,
        samples: r.values.map(([t, v]) => ({ time_s: t, value: Number(v) })),
      }));
    },
    async scrapedAfter(after_ms, timeout_ms = 30_000) {
      const until = Date.now() + timeout_ms;
      for (;;) {
        const [up] = await server.query(`timestamp(up{job="${job}"})`);
        if (up && up.value * 1000 > after_ms) return up.value;
        if (Date.now() > until) throw new Error(`no scrape of ${options.target} began after ${new Date(after_ms).toISOString()} within ${timeout_ms} ms (last: ${up ? new Date(up.value * 1000).toISOString() : 'none'})`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    output: () => output,
    close,
  };
  return server;
}
