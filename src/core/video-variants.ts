// The images the OpenAI door offers beside a video (GET /v1/videos/{id}/content?variant=...), made from the
// stored MP4 with ffmpeg on first request and kept beside it, so each is made once.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import type { AssetStore } from './assets';

export type ImageVariant = 'thumbnail' | 'spritesheet';

/** Frames in a spritesheet, laid out in a grid of SPRITE_COLUMNS. */
const SPRITE_FRAMES = 10;
const SPRITE_COLUMNS = 5;
/** Width of one spritesheet frame, in pixels (the height keeps the video's aspect). */
const SPRITE_FRAME_WIDTH = 256;

export interface VideoVariants {
  /**
   * The JPEG of `variant` for the video stored under `assetKey` (`durationS` long): made on the first call,
   * then read from disk. Concurrent calls share one ffmpeg run. Throws when ffmpeg fails.
   */
  pathOf(assetKey: string, variant: ImageVariant, durationS: number): Promise<string>;
}

export function createVideoVariants(assets: AssetStore, ffmpegPath: string = ffmpeg.path): VideoVariants {
  const making = new Map<string, Promise<string>>();
  return {
    async pathOf(assetKey, variant, durationS) {
      const target = assets.derivedPathOf(assetKey, `${variant}.jpg`);
      if (fs.existsSync(target)) return target;
      let made = making.get(target);
      if (!made) {
        made = make(assets.pathOf(assetKey), target, variant, durationS).finally(() => making.delete(target));
        making.set(target, made);
      }
      return made;
    },
  };

  async function make(video: string | undefined, target: string, variant: ImageVariant, durationS: number): Promise<string> {
    if (!video) throw new Error(`no stored video for ${target}`);
    const tmp = `${target}.${crypto.randomUUID()}.part.jpg`;
    // The thumbnail is the first frame at the video's size; the spritesheet samples SPRITE_FRAMES frames evenly.
    const filter =
      variant === 'thumbnail'
        ? []
        : ['-vf', `fps=${SPRITE_FRAMES / durationS},scale=${SPRITE_FRAME_WIDTH}:-2,tile=${SPRITE_COLUMNS}x${Math.ceil(SPRITE_FRAMES / SPRITE_COLUMNS)}`];
    try {
      await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-i', video, ...filter, '-frames:v', '1', '-q:v', '4', tmp]);
      await fs.promises.rename(tmp, target);
      return target;
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
