// Runs bench/support/in-flight-gateway.ts as a child process and talks to it: its URL, its usage, its RSS.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import type { GatewayRequest, GatewayUsage } from './in-flight-gateway';

const ENTRY = path.join(import.meta.dirname, 'in-flight-gateway.ts');

/** How the gateway's TypeScript is run: bundled by esbuild, by plain node (as `npm start` runs dist/server/), or through tsx. */
export type Runtime = 'tsx' | 'bundle';

export interface GatewayProcess {
  pid: number;
  url: string;
  /** Sends one request to the child and resolves with its answer; rejects with its error. */
  call(op: 'usage'): Promise<GatewayUsage>;
  call(op: Exclude<GatewayRequest['op'], 'usage'>, file?: string): Promise<unknown>;
  /** Resident set size of the child now, in bytes (VmRSS of /proc/<pid>/status). */
  rssBytes(): number;
  /** The child's RSS now by kind, in bytes: anonymous (heaps), file-backed (code, mapped files), shared memory. */
  rssKinds(): { anon: number; file: number; shmem: number };
  /** Closes the IPC channel (the child stops its gateway and exits) and resolves once it exited. */
  stop(): Promise<void>;
}

/** A `kB` field of a /proc/<pid>/status file (or of its text, with `isText`); NaN when it is not there. */
function statusKb(fileOrText: string, field: string, isText = false): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(isText ? fileOrText : fs.readFileSync(fileOrText, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/**
 * Bundles the child's entry with esbuild (npm packages left external) into `bench/support/` (its relative
 * `import.meta.url` paths, such as the OpenAPI spec's, then resolve as from src/), for `Runtime` 'bundle'.
 * Returns the bundle's path; the caller removes it.
 */
export async function bundleGateway(): Promise<string> {
  const outfile = path.join(import.meta.dirname, `.in-flight-gateway-${process.pid}.mjs`);
  await build({ entryPoints: [ENTRY], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'error' });
  return outfile;
}

/**
 * Forks the gateway with the raw config `raw` (what parseConfig takes) and `env` added to this process's
 * environment; resolves once it listens. `bundle`: the path bundleGateway made, to run it without tsx.
 * `nodeFlags`: more node options for the child (e.g. V8's heap sizes).
 * @throws Error when the child exits before it listens.
 */
export async function forkGateway(raw: unknown, env: Record<string, string>, bundle?: string, nodeFlags: string[] = []): Promise<GatewayProcess> {
  const child: ChildProcess = fork(bundle ?? ENTRY, [JSON.stringify(raw)], {
    execArgv: [...(bundle ? [] : ['--import', 'tsx']), ...nodeFlags],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pending = new Map<number, { resolve: (x: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const url = await new Promise<string>((resolve, reject) => {
    child.on('message', (m: { ready?: string; id?: number; result?: unknown; error?: string }) => {
      if (m.ready) return resolve(m.ready);
      const p = pending.get(m.id!);
      pending.delete(m.id!);
      if (m.error !== undefined) p?.reject(new Error(m.error));
      else p?.resolve(m.result);
    });
    void exited.then(() => reject(new Error(`the gateway process exited (${child.exitCode})`)));
  });
  const status = `/proc/${child.pid}/status`;
  return {
    pid: child.pid!,
    url,
    call: ((op: GatewayRequest['op'], file?: string) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        child.send({ id, op, file } satisfies GatewayRequest);
      })) as GatewayProcess['call'],
    rssBytes: () => statusKb(status, 'VmRSS') * 1024,
    rssKinds() {
      const text = fs.readFileSync(status, 'utf8');
      return { anon: statusKb(text, 'RssAnon', true) * 1024, file: statusKb(text, 'RssFile', true) * 1024, shmem: statusKb(text, 'RssShmem', true) * 1024 };
    },
    async stop() {
      child.disconnect();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000).unref())]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
