// The OpenAI door's create request (JSON, or multipart as the official SDK sends it) -> one NormalizedGeneration.
// The spec has checked types and enums; this checks what depends on the catalog and the image's address.
import type { components } from '../../generated/vidgate-api';
import { invalidRequest } from '../../core/errors';
import type { NormalizedGeneration } from '../../core/tasks';
import type { NormalizedRequest } from '../../providers/types';
import type { Router } from '../../routing/router';
import type { Outbound } from '../../net/outbound';
import { assertOffered } from '../offers';

type VideoCreate = components['schemas']['VideoCreateRequest'] | components['schemas']['VideoCreateForm'];

/** OpenAI's defaults (reference: upstream-apis.md, section 1). */
const DEFAULTS = { model: 'sora-2', seconds: 4, size: '720x1280' } as const;

/**
 * `body` as the spec validated it: in a multipart body, a text part `input_reference[image_url]` has become
 * `input_reference.image_url`, and an uploaded file part is `''` (its bytes come separately).
 * The image URL is checked by `outbound.checkUrl` (its host name resolved: one that resolves only to internal
 * addresses is refused).
 * @throws ApiError 400 (invalid_value, invalid_url naming input_reference, or what assertOffered throws).
 */
export async function normalizeVideoCreate(body: VideoCreate, router: Router, outbound: Outbound): Promise<NormalizedGeneration> {
  const prompt = body.prompt.trim();
  if (!prompt) throw invalidRequest('invalid_value', 'prompt must not be blank', 'prompt');
  const request: NormalizedRequest = {
    model: body.model ?? DEFAULTS.model,
    prompt,
    size: body.size ?? DEFAULTS.size,
    duration_s: Number(body.seconds ?? DEFAULTS.seconds) as NormalizedRequest['duration_s'],
  };
  if (body.resize_mode !== undefined) request.resize_mode = body.resize_mode;
  const reference = body.input_reference;
  if (typeof reference === 'object' && reference !== null) {
    const url = reference.image_url;
    const problem = await outbound.checkUrl(url);
    if (problem) throw invalidRequest('invalid_url', `input_reference.image_url ${problem}`, 'input_reference');
    request.image_url = url;
  }
  if (body.callback_url !== undefined) {
    const problem = await outbound.checkUrl(body.callback_url);
    if (problem) throw invalidRequest('invalid_url', `callback_url ${problem}`, 'callback_url');
  }
  assertOffered(request, router, { model: 'model', size: 'size', tier: 'size', duration: 'seconds' });
  return { request, callback_url: body.callback_url ?? null, cache: true, image_param: 'input_reference' };
}
