// The key under which a finished video can be reused for an identical request.
import { createHash } from 'node:crypto';
import { tierOfSize, type NormalizedRequest } from '../providers/types';

/** Bump when the key's inputs or their normalization change, so that old entries stop matching. */
const KEY_VERSION = 'v1';

/** The prompt as the cache key sees it: Unicode NFC, trimmed, runs of white space collapsed to one space, case folded. */
export function normalizePrompt(prompt: string): string {
  // Order matters:
  // 1. NFC first: case mapping can turn a combining mark into a letter (U+0345 -> ι), so the marks
  //    must be in canonical order before it ('α\u0345\u0301' and 'ᾴ' are the same text).
  // 2. Trim and collapse white space (\s with /u covers NBSP, U+3000, tabs, newlines) before case
  //    mapping, which never produces or removes white space.
  // 3. Upper then lower case, so that one-to-many mappings fold together ('ß' -> 'SS' -> 'ss') and
  //    the sigmas σ/ς/Σ end up as the context-sensitive lower case form.
  // 4. NFC again: case mapping can leave decomposed sequences ('ǰ' -> 'J\u030C' -> 'j\u030C').
  return prompt
    .normalize('NFC')
    .trim()
    .replace(/\s+/gu, ' ')
    .toUpperCase()
    .toLowerCase()
    .normalize('NFC');
}

/** Everything that decides the video, minus the prompt's cosmetic differences. `scope` is the team id, or '*' for a global cache. `imageSha256` is the hex SHA-256 of the reference image's bytes (undefined when the request has no image). */
export function cacheKey(request: NormalizedRequest, scope: string, imageSha256?: string): string {
  // A JSON array in a fixed order: no field can bleed into the next. The image is keyed by its
  // bytes, never by its URL (the same image at two addresses is the same request).
  const parts = [
    KEY_VERSION,
    scope,
    request.model,
    normalizePrompt(request.prompt),
    request.size,
    request.duration_s,
    tierOfSize(request.size),
    request.resize_mode ?? null,
    imageSha256 ?? null,
    // A remix is keyed by its original too (appended only then, so that other keys stay as they were).
    ...(request.remix_of ? [request.remix_of.provider_id, request.remix_of.upstream_id] : []),
  ];
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}
