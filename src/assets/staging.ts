// A downloaded video is written to a local temporary file and checked there before any backend keeps it.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ProviderError } from '../providers/types';
import type { AssetCheck } from './types';

/**
 * Writes `body` to `tmp`, then checks the complete file: an MP4 (`ftyp` box first) and `check`. Returns its size.
 * On any failure `tmp` is removed and the error thrown; on success the caller owns `tmp`.
 * @throws what the source threw; ProviderError `invalid_video` for bytes that are not an MP4; what `check` threw.
 */
export async function stageChecked(tmp: string, body: Readable, check?: AssetCheck): Promise<number> {
  const out = fs.createWriteStream(tmp);
  try {
    await pipeline(body, out);
    const { size } = await fs.promises.stat(tmp);
    if (!(await looksLikeMp4(tmp))) throw new ProviderError('invalid_video', `the provider sent ${size} bytes that are not an MP4`, true);
    await check?.(tmp);
    return size;
  } catch (err) {
    // A failed source can end the pipeline before the file is even open: wait for it, then remove it.
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/** An MP4 (ISO BMFF) file starts with a box whose type, at bytes 4-7, is `ftyp`. */
async function looksLikeMp4(file: string): Promise<boolean> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const head = Buffer.alloc(8);
    const { bytesRead } = await handle.read(head, 0, 8, 0);
    return bytesRead === 8 && head.toString('latin1', 4, 8) === 'ftyp';
  } finally {
    await handle.close();
  }
}
