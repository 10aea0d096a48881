// Adapter for the unified task API of aggregators (EvoLink-style; upstream-apis.md, section 2):
// POST /v1/videos/generations creates a task, GET /v1/tasks/{id} reports on it, and a completed task's
// results[0] links to the MP4. The adapter keeps nothing in memory: every call re-reads the task upstream,
// so a gateway restart between poll and download loses nothing.
import type { Readable } from 'node:stream';
import { originsOf } from '../../net/url-guard';
import { checkAnswersNotFound, errorFromResponse, readJson, send, sendJson, type HttpTarget } from '../http';
import { ProviderError, requireOffer, type CallContext, type PollResult, type ProviderAdapter } from '../types';
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
  /** Origins of result links (a CDN) exempt from the outbound URL check, e.g. `https://cdn.example.com`. */
  trustedResultOrigins?: readonly string[];
}

export function createTasksApiProvider(options: TasksApiProviderOptions): ProviderAdapter {
  const { id, catalog } = options;
  const target: HttpTarget = { baseUrl: options.baseUrl, apiKey: options.apiKey, timeoutMs: options.timeoutMs };
  const trustedOrigins = originsOf(options.trustedResultOrigins ?? []);

  async function readTask(upstreamId: string, ctx: CallContext): Promise<WireTask> {
    const res = await send(target, `v1/tasks/${encodeURIComponent(upstreamId)}`, { signal: ctx.signal });
    if (res.status === 404) {
      const error = await errorFromResponse(res);
      throw new ProviderError('resource_not_found', `task ${upstreamId}: ${error.message}`, true);
    }
    if (!res.ok) throw await errorFromResponse(res);
    return parseTask(await readJson(res));
  }

  const adapter: ProviderAdapter = {
    id,
    kind: 'tasks-api',
    catalog,

    // The task API takes no idempotency key, so ctx.idempotencyKey cannot be passed on.
    async submit(request, ctx) {
      const tasksOffer = requireOffer(catalog, request);
      const body = await sendJson<unknown>(target, 'v1/videos/generations', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(createTaskBody(tasksOffer, request)),
        signal: ctx.signal,
      });
      return { upstreamId: parseTask(body).id };
    },

    async poll(upstreamId, ctx): Promise<PollResult> {
      const task = await readTask(upstreamId, ctx);
      switch (task.status) {
        case 'pending':
        case 'processing':
          return { state: task.status, progress: task.progress };
        case 'completed':
          return { state: 'completed' };
        case 'failed':
          return { state: 'failed', error: taskFailure(task) };
      }
    },

    async download(upstreamId, ctx): Promise<Readable> {
      const task = await readTask(upstreamId, ctx);
      const link = task.status === 'completed' ? firstResult(task) : undefined;
      if (link === undefined) {
        const why = task.status === 'completed' ? 'has no results' : `is ${task.status}`;
        throw new ProviderError('not_ready', `task ${upstreamId} ${why}`, true);
      }
      return downloadResult(target, link, trustedOrigins, ctx.signal);
    },

    // No `cancel`: the task API documents no cancel endpoint (task_info.can_cancel notwithstanding).

    // GET of a task id no task can have (theirs start with `task-unified-`): a 404 with an error body means up.
    checkHealth: (ctx) => checkAnswersNotFound(target, 'v1/tasks/vidgate-health-check', ctx.signal),
  };
  return adapter;
}
