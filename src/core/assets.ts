// Finished MP4s on local disk, one file per key, written atomically.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import crypto from 'node:crypto';

export interface AssetStore {
  /** Store the stream under `key`, replacing any earlier copy only once the new one is complete. */
  put(key: string, body: Readable): Promise<{ bytes: number }>;
  /** Absolute path of the stored file, or undefined when absent. */
  pathOf(key: string): string | undefined;
  remove(key: string): Promise<void>;
}

const SAFE_KEY = /^[A-Za-z0-9_-]+$/;

export function createLocalAssetStore(dir: string): AssetStore {
  fs.mkdirSync(dir, { recursive: true });
  const fileOf = (key: string) => {
    if (!SAFE_KEY.test(key)) throw new Error(`unsafe asset key '${key}'`);
    return path.resolve(dir, `${key}.mp4`);
  };
  return {
    async put(key, body) {
      const target = fileOf(key);
      const tmp = `${target}.${crypto.randomUUID()}.part`;
      try {
        await pipeline(body, fs.createWriteStream(tmp));
        const { size } = await fs.promises.stat(tmp);
        if (size === 0) throw new Error('empty video');
        await fs.promises.rename(tmp, target);
        return { bytes: size };
      } finally {
        await fs.promises.rm(tmp, { force: true });
      }
    },
    pathOf(key) {
      const file = fileOf(key);
      return fs.existsSync(file) ? file : undefined;
    },
    async remove(key) {
      await fs.promises.rm(fileOf(key), { force: true });
    },
  };
}
