// The local-disk asset store (the default): one file per video in one directory, written atomically by rename.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { stageChecked } from './staging';
import { AssetMissing, fileNameOf, SAFE_DERIVED_NAME, type AssetStore } from './types';

/** An asset store over the directory `dir` (made if missing): `<key>.mp4` and `<key>.<derived>` files. */
export function createLocalAssetStore(dir: string): AssetStore {
  fs.mkdirSync(dir, { recursive: true });
  const pathOf = (ref: Parameters<typeof fileNameOf>[0]) => path.resolve(dir, fileNameOf(ref));
  /** A temporary file beside `target`, on the same file system, so the rename that publishes it is atomic. */
  const tmpFor = (target: string) => `${target}.${crypto.randomUUID()}.part`;

  return {
    kind: 'local',
    async put(key, body, check) {
      const target = pathOf({ key });
      const tmp = tmpFor(target);
      const bytes = await stageChecked(tmp, body, check);
      try {
        await fs.promises.rename(tmp, target);
      } catch (err) {
        await fs.promises.rm(tmp, { force: true });
        throw err;
      }
      return { bytes };
    },
    async stat(ref) {
      const stats = await fs.promises.stat(pathOf(ref)).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      return stats && { size_bytes: stats.size };
    },
    async open(ref, range) {
      // Opened before it is returned, so a missing file is AssetMissing here rather than a stream error later.
      const handle = await fs.promises.open(pathOf(ref), 'r').catch((err: NodeJS.ErrnoException) => {
        throw err.code === 'ENOENT' ? new AssetMissing(`no stored file ${fileNameOf(ref)}`) : err;
      });
      return handle.createReadStream(range ?? {});
    },
    async withLocalCopy(key, use) {
      const file = pathOf({ key });
      if (!fs.existsSync(file)) throw new AssetMissing(`no stored video ${fileNameOf({ key })}`);
      return use(file);
    },
    async putDerived(key, name, file) {
      const target = pathOf({ key, derived: name });
      const tmp = tmpFor(target);
      try {
        await fs.promises.copyFile(file, tmp);
        await fs.promises.rename(tmp, target);
      } finally {
        await fs.promises.rm(tmp, { force: true });
      }
    },
    async remove(key) {
      await fs.promises.rm(pathOf({ key }), { force: true });
      for (const name of await fs.promises.readdir(dir)) {
        if (name.startsWith(`${key}.`) && SAFE_DERIVED_NAME.test(name.slice(key.length + 1))) await fs.promises.rm(path.join(dir, name), { force: true });
      }
    },
  };
}
