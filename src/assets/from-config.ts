// The asset store named by the config's `assets` section.
import type { Config } from '../core/config';
import { createLocalAssetStore } from './local';
import type { AssetStore } from './types';

/** A setting of `assets` that the environment does not fulfil (a credentials variable not set). */
export class AssetConfigError extends Error {
  override name = 'AssetConfigError';
}

/**
 * `assets.kind` local: a store in `assets.dir`; s3: a store over `assets.s3.bucket`, with `assets.dir` as scratch
 * space, and its credentials read from the variables `assets.s3.*_env` name in `env` (their values never logged).
 * The AWS SDK is loaded only then (about 20 MB of memory a local store does not need).
 * @throws AssetConfigError naming a credentials variable that is not set.
 */
export async function createAssetStore(assets: Config['assets'], env: NodeJS.ProcessEnv): Promise<AssetStore> {
  if (assets.kind === 'local' || !assets.s3) return createLocalAssetStore(assets.dir);
  const s3 = assets.s3;
  const secret = (name: string | undefined, setting: string) => {
    const value = name === undefined ? undefined : env[name];
    if (name !== undefined && !value) throw new AssetConfigError(`the environment variable ${name} (named by assets.s3.${setting}) is not set`);
    return value;
  };
  const accessKeyId = secret(s3.access_key_id_env, 'access_key_id_env');
  const secretAccessKey = secret(s3.secret_access_key_env, 'secret_access_key_env');
  const { createS3AssetStore } = await import('./s3');
  return createS3AssetStore({
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    region: s3.region,
    force_path_style: s3.force_path_style,
    prefix: s3.prefix,
    scratch_dir: assets.dir,
    ...(accessKeyId && secretAccessKey && { credentials: { accessKeyId, secretAccessKey } }),
  });
}
