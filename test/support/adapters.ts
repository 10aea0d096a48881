// What the adapter tests share: a request, polling to the end, catching the ProviderError, reading a body.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

const workDirs: string[] = [];

/** A fresh work directory for a simulated provider; `removeWorkDirs` (a file's afterAll) deletes them all. */
export function tempWorkDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-sim-'));
  workDirs.push(dir);
  return dir;
}

export function removeWorkDirs(): void {
  for (const dir of workDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}
