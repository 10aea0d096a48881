// What the adapter tests share: a request, polling to the end, catching the ProviderError, reading a body.
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { ProviderError, type NormalizedRequest, type PollResult, type ProviderAdapter } from '../../src/providers/types';

export function request(overrides: Partial<NormalizedRequest> = {}): NormalizedRequest {
  return { model: 'sora-2', prompt: 'a cat on a skateboard', size: '1280x720', duration_s: 4, ...overrides };
}

/** Polls until the job leaves pending/processing; returns every result seen. */
export async function pollToEnd(adapter: ProviderAdapter, upstreamId: string, stepMs = 30): Promise<PollResult[]> {
  const seen: PollResult[] = [];
  for (;;) {
    const result = await adapter.poll(upstreamId, {});
    seen.push(result);
    if (result.state !== 'pending' && result.state !== 'processing') return seen;
    await sleep(stepMs);
  }
}

/** The ProviderError a promise rejects with (and a failed assertion if it rejects with anything else). */
export async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
