// The body of each webhook, per door: a native task's is the body of GET /v1/tasks/{id} (its presenter), an OpenAI
// door's task's is OpenAI's video event. Given to the core's deliverer by the composition root, so the core
// depends on no presenter.
import type { EventRenderer } from '../core/deliverer';
import type { Door, Store } from '../store/types';
import { presentTask } from './native/present';
import { presentVideoEvent } from './openai/present';

export interface WebhookBodyOptions {
  store: Store;
  /** The base of the links in a native task (its video), as `GET /v1/tasks/{id}` would give them. */
  baseUrl: () => string;
  retentionMs: number;
}

/** The renderer of each door's webhook body, for the deliverer. */
export function webhookBodies({ store, baseUrl, retentionMs }: WebhookBodyOptions): Record<Door, EventRenderer> {
  return {
    native: async (task) => presentTask(task, await store.listAttempts([task.id]), { baseUrl: baseUrl(), retentionMs }),
    openai: async (task, event) => presentVideoEvent(task, event),
  };
}
