// The images the OpenAI door offers beside a video (GET /v1/videos/{id}/content?variant=...), made from the
// stored MP4 with ffmpeg on first request and stored beside it (a file or an object), so each is made once.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import type { AssetRef, AssetStore } from '../assets/types';

export type ImageVariant = 'thumbnail' | 'spritesheet';

/** Frames in a spritesheet, laid out in a grid of SPRITE_COLUMNS. */
const SPRITE_FRAMES = 10;
const SPRITE_COLUMNS = 5;
/** Width of one spritesheet frame, in pixels (the height keeps the video's aspect). */
const SPRITE_FRAME_WIDTH = 256;

export interface VideoVariants {
  /**
   * The stored JPEG of `variant` for the video stored under `assetKey` (`durationS` long): made on the first call
   * (from a local copy of the video where the store is remote) and stored beside the video, then found there.
   * Concurrent calls in this process share one ffmpeg run. Throws AssetMissing without a video; throws when ffmpeg fails.
   */
  ensure(assetKey: string, variant: ImageVariant, durationS: number): Promise<AssetRef>;
}

export function createVideoVariants(assets: AssetStore, ffmpegPath: string = ffmpeg.path): VideoVariants {
  const making = new Map<string, Promise<AssetRef>>();
  return {
    async ensure(assetKey, variant, durationS) {
      const ref: AssetRef = { key: assetKey, derived: `${variant}.jpg` };
      if (await assets.stat(ref)) return ref;
      const id = `${assetKey}.${variant}`;
      let made = making.get(id);
      if (!made) {
        made = make(ref, variant, durationS).finally(() => making.delete(id));
        making.set(id, made);
      }
      return made;
    },
  };

  async function make(ref: AssetRef, variant: ImageVariant, durationS: number): Promise<AssetRef> {
    const tmp = path.join(os.tmpdir(), `vidgate-${crypto.randomUUID()}.jpg`);
    // The thumbnail is the first frame at the video's size; the spritesheet samples SPRITE_FRAMES frames evenly.
    const filter =
      variant === 'thumbnail'
        ? []
        : ['-vf', `fps=${SPRITE_FRAMES / durationS},scale=${SPRITE_FRAME_WIDTH}:-2,tile=${SPRITE_COLUMNS}x${Math.ceil(SPRITE_FRAMES / SPRITE_COLUMNS)}`];
    try {
      await assets.withLocalCopy(ref.key, (video) => run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-i', video, ...filter, '-frames:v', '1', '-q:v', '4', tmp]));
      await assets.putDerived(ref.key, ref.derived!, tmp);
      return ref;
    } finally {
      await fs.promises.rm(tmp, { force: true });
    }
  }
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`))));
  });
}
