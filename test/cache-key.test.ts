// The cache key: which prompt differences are cosmetic, and which request fields decide the video.
import { describe, expect, it } from 'vitest';
import { cacheKey, normalizePrompt } from '../src/core/cache-key';
import type { NormalizedRequest } from '../src/providers/types';

const base: NormalizedRequest = { model: 'sora-2', prompt: 'a cat', size: '720x1280', duration_s: 4 };
const DIGEST_A = 'a'.repeat(64);
const DIGEST_B = 'b'.repeat(64);

describe('normalizePrompt', () => {
  it('composes to NFC', () => {
    expect('caf\u0065\u0301').not.toBe('caf\u00e9');
    expect(normalizePrompt('caf\u0065\u0301')).toBe(normalizePrompt('caf\u00e9'));
    expect(normalizePrompt('caf\u0065\u0301')).toBe('caf\u00e9');
  });

  it('composes to NFC before mapping case', () => {
    // Canonically equivalent spellings of ᾴ: upper-casing maps U+0345 (iota subscript) to a
    // letter, so the marks must be put in canonical order first.
    expect(normalizePrompt('\u03b1\u0345\u0301')).toBe(normalizePrompt('\u1fb4'));
    expect(normalizePrompt('\u03b1\u0301\u0345')).toBe(normalizePrompt('\u1fb4'));
  });

  it('trims both ends', () => {
    expect(normalizePrompt('  \t\na cat\n \u00a0')).toBe('a cat');
  });

  it('collapses internal runs of any white space to one ASCII space', () => {
    expect(normalizePrompt('a  \t\n\r\u00a0\u3000\u2003cat')).toBe('a cat');
    expect(normalizePrompt('a\u00a0cat')).toBe('a cat');
    expect(normalizePrompt('a\u3000cat')).toBe('a cat');
    expect(normalizePrompt('a\tcat\non  a\r\nmat')).toBe('a cat on a mat');
  });

  it('folds case', () => {
    expect(normalizePrompt('A cat')).toBe(normalizePrompt('a CAT'));
    expect(normalizePrompt('A CAT')).toBe('a cat');
  });

  it('folds ß together with SS (upper case first, then lower)', () => {
    expect(normalizePrompt('STRASSE')).toBe(normalizePrompt('straße'));
    expect(normalizePrompt('straße')).toBe('strasse');
  });

  it('folds the Greek sigmas together, by position', () => {
    // Final Σ and a misplaced final σ both become ς; a medial ς becomes σ.
    expect(normalizePrompt('ΟΔΟΣ')).toBe(normalizePrompt('οδος'));
    expect(normalizePrompt('οδοσ')).toBe('οδος');
    expect(normalizePrompt('ςα')).toBe('σα');
    // Accents are not cosmetic: οδός is a different string.
    expect(normalizePrompt('οδός')).not.toBe(normalizePrompt('οδος'));
    expect(normalizePrompt('ΟΔΌΣ')).toBe(normalizePrompt('οδός'));
  });

  it('composes again after case mapping', () => {
    // 'J' + combining caron has no precomposed capital; lower-cased it composes to U+01F0 'ǰ'.
    expect(normalizePrompt('J\u030c')).toBe('\u01f0');
    expect(normalizePrompt('\u01f0')).toBe('\u01f0');
  });

  it('keeps differences that are not cosmetic', () => {
    expect(normalizePrompt('a cat')).not.toBe(normalizePrompt('a cats'));
    expect(normalizePrompt('a cat')).not.toBe(normalizePrompt('acat'));
  });
});

describe('cacheKey', () => {
  it('is 64 lower-case hex characters', () => {
    expect(cacheKey(base, 'team-1')).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKey(base, '*', DIGEST_A)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is equal for requests whose prompts differ only cosmetically', () => {
    const key = cacheKey({ ...base, prompt: 'A café on the STRASSE' }, 'team-1');
    for (const prompt of ['a cafe\u0301 on the straße', '  a\u00a0café\ton\n\nthe \u3000strasse  ', 'A CAFÉ ON THE STRASSE']) {
      expect(cacheKey({ ...base, prompt }, 'team-1')).toBe(key);
    }
  });

  it('differs when the prompt differs in substance', () => {
    expect(cacheKey({ ...base, prompt: 'a dog' }, 'team-1')).not.toBe(cacheKey(base, 'team-1'));
  });

  it('differs when any field that decides the video differs', () => {
    const key = cacheKey({ ...base, resize_mode: 'pad' }, 'team-1', DIGEST_A);
    const variants: Array<[NormalizedRequest, string, string | undefined]> = [
      [{ ...base, model: 'sora-2-pro', resize_mode: 'pad' }, 'team-1', DIGEST_A],
      [{ ...base, size: '1280x720', resize_mode: 'pad' }, 'team-1', DIGEST_A],
      [{ ...base, size: '1024x1792', resize_mode: 'pad' }, 'team-1', DIGEST_A],
      [{ ...base, duration_s: 8, resize_mode: 'pad' }, 'team-1', DIGEST_A],
      [{ ...base, resize_mode: 'crop' }, 'team-1', DIGEST_A],
      [{ ...base }, 'team-1', DIGEST_A],
      [{ ...base, resize_mode: 'pad' }, 'team-1', DIGEST_B],
      [{ ...base, resize_mode: 'pad' }, 'team-1', undefined],
      [{ ...base, resize_mode: 'pad' }, 'team-2', DIGEST_A],
      [{ ...base, resize_mode: 'pad' }, '*', DIGEST_A],
    ];
    const keys = variants.map(([request, scope, digest]) => cacheKey(request, scope, digest));
    for (const other of keys) expect(other).not.toBe(key);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keys the image by its bytes, not its URL', () => {
    const atOne = cacheKey({ ...base, image_url: 'https://one.example/cat.png' }, 'team-1', DIGEST_A);
    const atTwo = cacheKey({ ...base, image_url: 'https://two.example/x?y=1' }, 'team-1', DIGEST_A);
    expect(atOne).toBe(atTwo);
    expect(cacheKey({ ...base, image_url: 'https://one.example/cat.png' }, 'team-1', DIGEST_B)).not.toBe(atOne);
  });

  it('differs between a request with an image and one without', () => {
    expect(cacheKey({ ...base, image_url: 'https://one.example/cat.png' }, 'team-1', DIGEST_A)).not.toBe(cacheKey(base, 'team-1'));
  });

  it('is deterministic', () => {
    expect(cacheKey({ ...base }, 'team-1', DIGEST_A)).toBe(cacheKey({ ...base }, 'team-1', DIGEST_A));
  });
});
