// Entry point: load the config, start the gateway, drain on SIGTERM/SIGINT. Run it as the process that gets
// the signals (`node --import tsx src/main.ts`, or `npm start`, whose script execs node): a wrapper that does
// not pass signals on would leave the gateway running undrained.
import { ConfigError, loadConfig } from './core/config';
import { createGateway, StartupError } from './core/gateway';

async function main(): Promise<void> {
  const config = loadConfig();
  const gateway = await createGateway(config);
  const url = await gateway.start();
  let banner = `vidgate listening on ${url}\n`;
  if (gateway.devKey) {
    banner +=
      `\nCreated a development API key (shown only this once; only its hash is stored):\n\n  ${gateway.devKey}\n\n` +
        `Try it:\n\n  curl -s ${url}/v1/videos/generations -H 'Authorization: Bearer ${gateway.devKey}' ` +
        `-H 'Content-Type: application/json' -d '{"model":"sora-2","prompt":"a paper boat on a rainy street","duration":4}'\n\n`;
  }
  process.stdout.write(banner);
  // A second signal (npm passes Ctrl-C on while the terminal sends it too) does not cut the drain short.
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`${signal}: draining\n`);
    gateway.stop().then(
      () => process.exit(0),
      (err: Error) => {
        process.stderr.write(`shutdown failed: ${err.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: Error) => {
  const expected = err instanceof ConfigError || err instanceof StartupError;
  process.stderr.write(`vidgate: ${expected ? err.message : err.stack}\n`);
  process.exit(1);
});
