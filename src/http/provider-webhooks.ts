// POST /providers/{provider_id}/webhooks: a provider's signed word that one of its jobs finished
// (src/core/provider-webhooks.ts). No API key: the Standard Webhooks signature over the exact bytes is the credential.
import type { IncomingMessage } from 'node:http';
import express from 'express';
import type { ProviderWebhooks } from '../core/provider-webhooks';

export interface ProviderWebhookRoutesDeps {
  providerWebhooks: ProviderWebhooks;
}

const WEBHOOK_PATH = /^\/providers\/[^/]+\/webhooks\/?(\?|$)/;
/** The bytes of a webhook's body as received, kept by the JSON parser (see keepWebhookBody) for the signature. */
const rawBodies = new WeakMap<IncomingMessage, Buffer>();

/**
 * For `express.json({ verify })`: keeps the body of a provider webhook as received, since the signature is over
 * those exact bytes and the parsed JSON cannot give them back. Other requests keep nothing.
 */
export function keepWebhookBody(req: IncomingMessage, _res: unknown, body: Buffer): void {
  if (req.method === 'POST' && WEBHOOK_PATH.test(req.url ?? '')) rawBodies.set(req, body);
}

export function createProviderWebhookRoutes(deps: ProviderWebhookRoutesDeps): express.Router {
  const routes = express.Router();
  routes.post('/providers/:provider_id/webhooks', async (req, res) => {
    const header = (name: string) => req.get(name);
    await deps.providerWebhooks.receive(req.params.provider_id!, rawBodies.get(req) ?? Buffer.alloc(0), {
      'webhook-id': header('webhook-id'),
      'webhook-timestamp': header('webhook-timestamp'),
      'webhook-signature': header('webhook-signature'),
    });
    res.status(204).end();
  });
  return routes;
}
