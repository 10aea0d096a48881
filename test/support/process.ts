// The real server as a child process, the way `npm start` runs it.
import { spawn, type ChildProcess } from 'node:child_process';

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string;
  /** The exit code, once the process has exited and its output has been read to the end. */
  exited: Promise<number | null>;
}

/**
 * Starts `node --import tsx src/main.ts` (or `npm start` with via: 'npm') and resolves once it listens.
 * The readiness delay of a drain is 0 unless env sets it, so that a SIGTERM stops it at once.
 */
export async function startServerProcess(env: Record<string, string>, via: 'node' | 'npm' = 'node'): Promise<ServerProcess> {
  const [command, args] = via === 'npm' ? ['npm', ['start', '--silent']] : [process.execPath, ['--import', 'tsx', 'src/main.ts']];
  const child = spawn(command, args, {
    env: { ...process.env, VIDGATE_SERVER__DRAIN_READINESS_DELAY_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  // Once the process has exited and its output has been read to the end ('close'): lines it wrote just before a
  // SIGKILL may still be in the pipe at 'exit'. A grandchild holding the pipe open cannot delay it past 5 s.
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', (code) => resolve(code));
    child.once('exit', (code) => setTimeout(() => resolve(code), 5000).unref());
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 30_000);
    const onData = () => {
      const m = /vidgate listening on (\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`server exited (${code}) before listening:\n${output}`)));
  });
  return { child, url, output: () => output, exited };
}
