// Finished MP4s on local disk, one file per key, written atomically.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import crypto from 'node:crypto';
import { ProviderError } from '../providers/types';

export interface AssetStore {
  /**
   * Store the stream under `key`, replacing any earlier copy only once the new one is complete and `check`
   * (given the complete temporary file) has passed; a file that fails the check is deleted, and its error thrown.
   */
  put(key: string, body: Readable, check?: (file: string) => Promise<unknown>): Promise<{ bytes: number }>;
  /** Absolute path of the stored file, or undefined when absent. */
  pathOf(key: string): string | undefined;
  /** Where a file made from the video (`<key>.<name>`, e.g. `thumbnail.jpg`) is kept beside it; it may not exist yet. */
  derivedPathOf(key: string, name: string): string;
  /** Removes the video and every file made from it. */
  remove(key: string): Promise<void>;
}

const SAFE_KEY = /^[A-Za-z0-9_-]+$/;
/** A derived file's name: `thumbnail.jpg`, `spritesheet.jpg`. */
const SAFE_NAME = /^[a-z]+\.[a-z0-9]+$/;

export function createLocalAssetStore(dir: string): AssetStore {
  fs.mkdirSync(dir, { recursive: true });
  const fileOf = (key: string) => {
    if (!SAFE_KEY.test(key)) throw new Error(`unsafe asset key '${key}'`);
    return path.resolve(dir, `${key}.mp4`);
  };
  return {
    async put(key, body, check) {
      const target = fileOf(key);
      const tmp = `${target}.${crypto.randomUUID()}.part`;
      const out = fs.createWriteStream(tmp);
      try {
        await pipeline(body, out);
        const { size } = await fs.promises.stat(tmp);
        if (!(await looksLikeMp4(tmp))) throw new ProviderError('invalid_video', `the provider sent ${size} bytes that are not an MP4`, true);
        await check?.(tmp);
        await fs.promises.rename(tmp, target);
        return { bytes: size };
      } finally {
        // A failed source can end the pipeline before the file is even open: wait for it, then remove it.
        if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
        await fs.promises.rm(tmp, { force: true });
      }
    },
    pathOf(key) {
      const file = fileOf(key);
      return fs.existsSync(file) ? file : undefined;
    },
    derivedPathOf(key, name) {
      if (!SAFE_KEY.test(key) || !SAFE_NAME.test(name)) throw new Error(`unsafe asset name '${key}.${name}'`);
      return path.resolve(dir, `${key}.${name}`);
    },
    async remove(key) {
      await fs.promises.rm(fileOf(key), { force: true });
      for (const name of await fs.promises.readdir(dir)) {
        if (name.startsWith(`${key}.`) && SAFE_NAME.test(name.slice(key.length + 1))) await fs.promises.rm(path.join(dir, name), { force: true });
      }
    },
  };
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
