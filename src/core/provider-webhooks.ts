// Providers' webhooks: a signed word from a provider that one of its jobs finished, so that the job is polled now
// rather than at its next scheduled poll. The event is trusted only to name the job; what the task becomes is what
// the provider answers to that poll, so polling stays the one path to a task's end, and the fallback.
// Signatures follow Standard Webhooks (OpenAI's webhooks; upstream-apis.md section 1), verified with the
// `standardwebhooks` package (the spec's reference implementation: constant-time compare, 5-minute tolerance).
import { Webhook } from 'standardwebhooks';
import type { Store } from '../store/types';
import { ApiError } from './errors';
import type { Logger } from './logger';

/** Event types that say a job finished (OpenAI's video events). */
const FINISHED = new Set(['video.completed', 'video.failed']);

export interface ProviderWebhooksDeps {
  store: Store;
  /** The webhook secret (`whsec_<base64>`) of each provider that sends webhooks, by provider id. */
  secrets: ReadonlyMap<string, string>;
  /** A job of this provider is due now: wake its poller. */
  onDue(providerId: string): void;
  log: Logger;
  now(): number;
}

export interface ProviderWebhooks {
  /**
   * Takes one webhook request: `body` exactly as received, `headers` with the Standard Webhooks headers.
   * Resolves once a finished job's task is due now (or the event was ignored: another type, an unknown job).
   * @throws ApiError 404 `provider_not_found` when the provider sends no webhooks; 401 `invalid_webhook_signature`
   * when the signature is missing, wrong or stale; 400 `invalid_webhook_event` when the signed body is not an event.
   */
  receive(providerId: string, body: Buffer, headers: Record<string, string | undefined>): Promise<void>;
}

export function createProviderWebhooks(deps: ProviderWebhooksDeps): ProviderWebhooks {
  const verifiers = new Map([...deps.secrets].map(([id, secret]) => [id, new Webhook(secret)]));
  return {
    async receive(providerId, body, headers) {
      const verifier = verifiers.get(providerId);
      if (!verifier) throw new ApiError(404, 'not_found_error', 'provider_not_found', `no provider '${providerId}' takes webhooks`);
      let event: { type?: unknown; data?: { id?: unknown } };
      try {
        const signed = { 'webhook-id': headers['webhook-id'] ?? '', 'webhook-timestamp': headers['webhook-timestamp'] ?? '', 'webhook-signature': headers['webhook-signature'] ?? '' };
        event = verifier.verify(body, signed) as typeof event;
      } catch (err) {
        if (err instanceof SyntaxError) throw new ApiError(400, 'invalid_request_error', 'invalid_webhook_event', 'the signed body is not JSON');
        throw new ApiError(401, 'authentication_error', 'invalid_webhook_signature', 'the webhook signature is missing, wrong or too old');
      }
      const jobId = event?.data?.id;
      if (typeof event?.type !== 'string' || !FINISHED.has(event.type) || typeof jobId !== 'string') return;
      const taskId = await deps.store.pollJobNow(providerId, jobId, deps.now());
      if (taskId === undefined) return;
      deps.log.info({ provider: providerId, task_id: taskId, event: event.type }, 'provider webhook: job finished, polling it now');
      deps.onDue(providerId);
    },
  };
}
