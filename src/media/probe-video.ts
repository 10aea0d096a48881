// What a delivered MP4 really is (codec, pixel size, duration), read by ffprobe, and whether it is what was
// asked for. A provider that delivers another shape than requested is at fault (`output_mismatch`).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import ffprobe from '@ffprobe-installer/ffprobe';
import { ProviderError, type DurationS, type VideoSize } from '../providers/types';

export interface VideoFacts {
  /** ffprobe's codec name of the first video stream, e.g. `h264`. */
  codec: string;
  width: number;
  height: number;
  duration_s: number;
}

/**
 * Codecs vidgate accepts: H.264, what the OpenAI Videos API and the task API deliver in MP4
 * (upstream-apis.md) and what every browser plays.
 */
export const ACCEPTED_CODECS: readonly string[] = ['h264'];

/**
 * How far a video's duration may stray from the requested seconds: 0.5 s either way. Encoders round the
 * last frame (a 4 s clip at 24 fps may last 4.04 s), but a clip short by a whole second is another product.
 */
export const DURATION_TOLERANCE_S = 0.5;

/** ffprobe's facts about `file`; throws an Error naming the file when ffprobe cannot read it as a video. */
export async function probeVideo(file: string, ffprobePath: string = ffprobe.path): Promise<VideoFacts> {
  const args = ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height:format=duration', '-of', 'json', file];
  const { stdout } = await promisify(execFile)(ffprobePath, args, { timeout: 30_000 });
  const json = JSON.parse(stdout) as { streams?: { codec_name?: string; width?: number; height?: number }[]; format?: { duration?: string } };
  const stream = json.streams?.[0];
  const duration_s = Number(json.format?.duration);
  if (!stream?.codec_name || !stream.width || !stream.height || !Number.isFinite(duration_s)) {
    throw new Error(`${file} has no video stream with a size and a duration`);
  }
  return { codec: stream.codec_name, width: stream.width, height: stream.height, duration_s };
}

/** Why `facts` is not the video requested (codec, `WxH`, seconds within DURATION_TOLERANCE_S), or null when it is. */
export function videoMismatch(facts: VideoFacts, wanted: { size: VideoSize; duration_s: DurationS }): string | null {
  const problems: string[] = [];
  if (!ACCEPTED_CODECS.includes(facts.codec)) problems.push(`codec ${facts.codec}, not ${ACCEPTED_CODECS.join(' or ')}`);
  if (`${facts.width}x${facts.height}` !== wanted.size) problems.push(`${facts.width}x${facts.height}, not ${wanted.size}`);
  if (Math.abs(facts.duration_s - wanted.duration_s) > DURATION_TOLERANCE_S) {
    problems.push(`${facts.duration_s.toFixed(2)} s, not ${wanted.duration_s} s`);
  }
  return problems.length ? problems.join('; ') : null;
}

/**
 * Checks the video in `file` against the request. Throws a retryable ProviderError (the provider is at
 * fault): `output_mismatch` for another codec, size or duration, `invalid_video` when ffprobe cannot read it.
 */
export async function verifyVideo(file: string, wanted: { size: VideoSize; duration_s: DurationS }): Promise<VideoFacts> {
  let facts: VideoFacts;
  try {
    facts = await probeVideo(file);
  } catch (err) {
    throw new ProviderError('invalid_video', `the provider sent a file that is not a playable video: ${(err as Error).message}`, true);
  }
  const mismatch = videoMismatch(facts, wanted);
  if (mismatch) throw new ProviderError('output_mismatch', `the provider delivered another video than requested: ${mismatch}`, true);
  return facts;
}
