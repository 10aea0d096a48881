// Adapter for the unified task API of aggregators (EvoLink-style; upstream-apis.md, section 2):
// POST /v1/videos/generations creates a task, GET /v1/tasks/{id} reports on it, and a completed task's
// results[0] links to the MP4. The adapter keeps nothing in memory: every call re-reads the task upstream,
// so a gateway restart between poll and download loses nothing.
import type { Readable } from 'node:stream';
import type { Outbound } from '../../net/outbound';
import { checkAnswersNotFound, errorFromResponse, readJson, send, sendJson, type HttpTarget } from '../http';
import { ProviderError, requireOffer, type AdapterWarn, type CallContext, type PollResult, type ProviderAdapter } from '../types';
import { downloadResult } from './result-download';
import { createTaskBody, firstResult, parseTask, taskFailure, type TasksApiOffer, type WireTask } from './wire';

export { defaultAspectRatioStyle, type AspectRatioStyle, type TasksApiOffer } from './wire';

export interface TasksApiProviderOptions {
  id: string;
  /** The server root; API paths (v1/...) are resolved under it. */
  baseUrl: string;
  apiKey: string;
  /** Per HTTP call, until the answer's headers arrive. */
  timeoutMs: number;
  catalog: TasksApiOffer[];
  /**
   * Checks and fetches result links on other origins than the API's (a CDN); the operator's trusted result
   * origins (e.g. `https://cdn.example.com`) are already trusted in it (Outbound.trusting).
   */
  outbound: Outbound;
  /** Told once per status value when the provider answers with a status the reference does not list. */
  warn?: AdapterWarn;
}

export function createTasksApiProvider(options: TasksApiProviderOptions): ProviderAdapter {
  const { id, catalog } = options;
  const target: HttpTarget = { baseUrl: options.baseUrl, apiKey: options.apiKey, timeoutMs: options.timeoutMs };
  const unknownStatuses = new Set<string>();
  /** The task, with a status outside the reference's logged (once per value). */
  const task = (body: unknown): WireTask => {
    const t = parseTask(body);
    if (t.unknown_status !== undefined && !unknownStatuses.has(t.unknown_status)) {
      unknownStatuses.add(t.unknown_status);
      options.warn?.('provider answered an unknown task status; the task is kept as processing', { provider: id, status: t.unknown_status, upstream_id: t.id });
    }
    return t;
  };

  async function readTask(upstreamId: string, ctx: CallContext): Promise<WireTask> {
    const res = await send(target, `v1/tasks/${encodeURIComponent(upstreamId)}`, { signal: ctx.signal });
    if (res.status === 404) {
      const error = await errorFromResponse(res);
      throw new ProviderError('resource_not_found', `task ${upstreamId}: ${error.message}`, true);
    }
    if (!res.ok) throw await errorFromResponse(res);
    return task(await readJson(res));
  }

  const adapter: ProviderAdapter = {
    id,
    kind: 'tasks-api',
    catalog,
    // The task API takes no idempotency key (and lists no jobs, so it has no findJob): a create whose
    // answer was lost is never sent again.
    // Image URLs only, with resize_mode (wire.ts): the provider fits the image.
    capabilities: { idempotency_keys: false, reference_image: 'url' },

    async submit(request, ctx) {
      const tasksOffer = requireOffer(catalog, request);
      const body = await sendJson<unknown>(target, 'v1/videos/generations', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(createTaskBody(tasksOffer, request)),
        signal: ctx.signal,
      }, ctx.lateAnswer);
      return { upstreamId: task(body).id };
    },

    async poll(upstreamId, ctx): Promise<PollResult> {
      const current = await readTask(upstreamId, ctx);
      switch (current.status) {
        case 'pending':
        case 'processing':
          return { state: current.status, progress: current.progress };
        case 'completed':
          return { state: 'completed' };
        case 'failed':
          return { state: 'failed', error: taskFailure(current) };
      }
    },

    async download(upstreamId, ctx): Promise<Readable> {
      const current = await readTask(upstreamId, ctx);
      const link = current.status === 'completed' ? firstResult(current) : undefined;
      if (link === undefined) {
        const why = current.status === 'completed' ? 'has no results' : `is ${current.status}`;
        throw new ProviderError('not_ready', `task ${upstreamId} ${why}`, true);
      }
      return downloadResult(target, link, options.outbound, ctx.signal);
    },

    // No `cancel`: the task API documents no cancel endpoint (task_info.can_cancel notwithstanding).

    // GET of a task id no task can have (theirs start with `task-unified-`): a 404 with an error body means up.
    checkHealth: (ctx) => checkAnswersNotFound(target, 'v1/tasks/vidgate-health-check', ctx.signal),
  };
  return adapter;
}
