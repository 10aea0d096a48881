// Which side a provider's failed HTTP answer blames (src/providers/http.ts): only 400, 413 and 422 blame the
// request's content; every other failure is the provider's, so the task fails over and the provider's health counts it.
import { describe, expect, it } from 'vitest';
import { errorFromResponse } from '../src/providers/http';

const answer = (status: number, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ error: { message: `status ${status}` } }), { status, headers: { 'content-type': 'application/json', ...headers } });

describe('the blame of a failed provider answer', () => {
  it.each([400, 413, 422])('%i blames the request: no failover, the provider is not counted', async (status) => {
    expect(await errorFromResponse(answer(status))).toMatchObject({ retryable: false, code: `http_${status}` });
  });

  it.each([401, 402, 403, 404, 405, 408, 409, 410, 415, 429, 500, 502, 503, 504])(
    "%i is the provider's fault (a bad key, a wrong base_url, an API that moved, an outage): the task fails over",
    async (status) => {
      expect(await errorFromResponse(answer(status))).toMatchObject({ retryable: true, code: `http_${status}` });
    },
  );

  it('keeps a provider\'s own "do not retry" (x-should-retry: false) as the request\'s fault', async () => {
    expect(await errorFromResponse(answer(503, { 'x-should-retry': 'false' }))).toMatchObject({ retryable: false });
  });
});
