// The gateway of one bench/in-flight run, in its own process (forked by the bench with an IPC channel), so that its
// RSS and CPU are the gateway's alone: not the load generator's, nor those of the rounds before it.
//
//   fork('bench/support/in-flight-gateway.ts', [JSON of the raw config], { execArgv: ['--import', 'tsx'] })
//
// The config is the raw object `parseConfig` takes (the bench parses it too, for the workers' settings); the
// provider keys and admin token come from the environment. Once listening, it sends `{ ready: url }`. Then it
// answers the bench's requests `{ id, op }` with `{ id, result }` (or `{ id, error }`):
//   usage          { memory: process.memoryUsage() in bytes, cpu_us: user + system CPU since start in µs,
//                    heap_spaces: { [space]: used bytes }, code_bytes: code and metadata in the V8 heap,
//                    loop_delay_ms: { p99, max } of the event loop's delay since the last `usage` }
//   stop-workers   stops the background loops (the bench's --backlog); start-workers starts them again
//   heap-snapshot  writes a V8 heap snapshot to `file` (the request's), answers its path
// It stops the gateway and exits when its IPC channel closes (the bench ended, or killed it).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import { parseConfig } from '../../src/core/config';
import { createGateway } from '../../src/core/gateway';
import { createLogger } from '../../src/core/logger';

/** A request of the bench. */
export interface GatewayRequest {
  id: number;
  op: 'usage' | 'stop-workers' | 'start-workers' | 'heap-snapshot';
  file?: string;
}

/** What `usage` answers. */
export interface GatewayUsage {
  memory: NodeJS.MemoryUsage;
  cpu_us: number;
  heap_spaces: Record<string, number>;
  code_bytes: number;
  loop_delay_ms: { p99: number; max: number };
}

const config = parseConfig(JSON.parse(process.argv[2]!));
const gateway = await createGateway(config, { log: createLogger('silent') });
const url = await gateway.start();
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

async function answer(req: GatewayRequest): Promise<unknown> {
  switch (req.op) {
    case 'usage': {
      const cpu = process.cpuUsage();
      const code = v8.getHeapCodeStatistics();
      const usage: GatewayUsage = {
        memory: process.memoryUsage(),
        cpu_us: cpu.user + cpu.system,
        heap_spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size])),
        code_bytes: code.code_and_metadata_size + code.bytecode_and_metadata_size,
        loop_delay_ms: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
      };
      loopDelay.reset();
      return usage;
    }
    case 'stop-workers':
      return gateway.workers.stop(10_000);
    case 'start-workers':
      return gateway.workers.start();
    case 'heap-snapshot':
      return v8.writeHeapSnapshot(req.file);
  }
}

process.on('message', (req: GatewayRequest) => {
  answer(req).then(
    (result) => process.send!({ id: req.id, result }),
    (err: Error) => process.send!({ id: req.id, error: err.message }),
  );
});
process.on('disconnect', () => {
  gateway.stop().finally(() => process.exit(0));
});
process.send!({ ready: url });
