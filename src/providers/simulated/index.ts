// The embedded default provider: behaves like a remote upstream (jobs keep running while the gateway
// is down, resubmission with the same idempotency key is not a second job) but needs no keys or
// network. All job state lives on disk under workDir; see job-store.ts for the layout.
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import type { Readable } from 'node:stream';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import {
  ProviderError,
  requireOffer,
  type CallContext,
  type ModelOffer,
  type NormalizedRequest,
  type PollResult,
  type ProviderAdapter,
} from '../types';
import { DEFAULT_SIMULATED_CATALOG } from './catalog';
import { jobStatus } from './job-status';
import { JobStore, newJobId, type FailureKind, type JobRecord } from './job-store';
import { renderMp4 } from './render-mp4';

export { DEFAULT_SIMULATED_CATALOG } from './catalog';
export { listJobs, type FailureKind, type JobRecord } from './job-store';

export interface SimulatedProviderOptions {
  /** Directory holding the provider's state. */
  workDir: string;
  id?: string;
  /** Time from submission to completion. Default 4000. */
  durationMs?: number;
  /** Probability (0..1) that a submitted job is doomed to fail halfway. Default 0. */
  failureRate?: number;
  /** How doomed jobs fail. Default 'retryable'. */
  failureKind?: FailureKind;
  /** Frame rate of rendered videos. Default 24. */
  fps?: number;
  ffmpegPath?: string;
  catalog?: readonly ModelOffer[];
}

export function createSimulatedProvider(options: SimulatedProviderOptions): ProviderAdapter {
  const {
    id = 'simulated',
    durationMs = 4000,
    failureRate = 0,
    failureKind = 'retryable',
    fps = 24,
    ffmpegPath = ffmpeg.path,
    catalog = DEFAULT_SIMULATED_CATALOG,
  } = options;
  const store = new JobStore(options.workDir);
  store.removeStaleTempFiles();
  // Renders in flight in this process, so concurrent polls of one job render it once.
  const rendering = new Map<string, Promise<void>>();

  function newJob(jobId: string, request: NormalizedRequest, idempotencyKey?: string): JobRecord {
    return {
      id: jobId,
      request,
      ...(idempotencyKey !== undefined && { idempotency_key: idempotencyKey }),
      created_at_ms: Date.now(),
      duration_ms: durationMs,
      fps,
      ...(Math.random() < failureRate && { failure: failureKind }),
    };
  }

  async function readJob(jobId: string): Promise<JobRecord> {
    const job = await store.read(jobId);
    if (!job) throw new ProviderError('resource_not_found', `unknown job ${jobId}`, true);
    return job;
  }

  async function ensureRendered(job: JobRecord): Promise<void> {
    if (job.released_at_ms !== undefined) throw new ProviderError('resource_not_found', `job ${job.id}: its video was released`, false);
    const dest = store.videoFile(job.id);
    if (await fileExists(dest)) return;
    let render = rendering.get(job.id);
    if (!render) {
      const [width, height] = job.request.size.split('x').map(Number) as [number, number];
      const spec = { ffmpegPath, width, height, durationS: job.request.duration_s, fps: job.fps };
      render = renderMp4(spec, dest, store.tmpDir).finally(() => rendering.delete(job.id));
      rendering.set(job.id, render);
    }
    await render;
  }

  async function submit(request: NormalizedRequest, ctx: CallContext): Promise<{ upstreamId: string }> {
    requireOffer(catalog, request);
    const key = ctx.idempotencyKey;
    const jobId = key === undefined ? newJobId() : await store.claimKey(key, newJobId());
    // Creates the job unless it exists; also recovers a key whose claimer died before creating it.
    if (!(await store.read(jobId))) await store.create(newJob(jobId, request, key));
    return { upstreamId: jobId };
  }

  return {
    id,
    kind: 'simulated',
    catalog,
    // Keys are files created exclusively (job-store.ts): a create sent again under its key is the same job.
    // It renders a test pattern and never looks at a reference image, so it refuses none, uploads included.
    capabilities: { idempotency_keys: true, reference_image: 'bytes' },

    submit,

    async poll(upstreamId): Promise<PollResult> {
      const job = await readJob(upstreamId);
      const status = jobStatus(job, Date.now());
      if (status.state !== 'done') return status;
      if (job.released_at_ms === undefined) await ensureRendered(job);
      return { state: 'completed' };
    },

    async download(upstreamId): Promise<Readable> {
      const job = await readJob(upstreamId);
      if (jobStatus(job, Date.now()).state !== 'done') {
        throw new ProviderError('not_ready', `job ${upstreamId} has not completed`, true);
      }
      await ensureRendered(job);
      return createReadStream(store.videoFile(job.id));
    },

    async remix(upstreamId, request, ctx) {
      const original = await readJob(upstreamId);
      if (jobStatus(original, Date.now()).state !== 'done') {
        throw new ProviderError('invalid_parameters', `job ${upstreamId} has not completed; only a finished video can be remixed`, false);
      }
      return submit(request, ctx);
    },

    async cancel(upstreamId) {
      const job = await readJob(upstreamId);
      const { state } = jobStatus(job, Date.now());
      // Like a real upstream, a job that already finished (or failed) stays as it is.
      if (state === 'pending' || state === 'processing') await store.update({ ...job, cancelled_at_ms: Date.now() });
    },

    // Up while its work directory is usable (it runs in this process: nothing else can be down).
    async checkHealth() {
      await fs.access(options.workDir, fs.constants.R_OK | fs.constants.W_OK).catch((err: Error) => {
        throw new ProviderError('health_check_failed', `work directory unusable: ${err.message}`, true);
      });
    },

    /** The gateway has its own copy: delete ours, and remember that, so the job is never rendered again. */
    async release(upstreamId) {
      const job = await readJob(upstreamId);
      await rendering.get(job.id)?.catch(() => undefined);
      await store.update({ ...job, released_at_ms: Date.now() });
      await fs.rm(store.videoFile(job.id), { force: true });
    },
  };
}

async function fileExists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}
