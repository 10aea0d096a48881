// The simulated upstream's durable state: one JSON file per job, one lookup file per idempotency
// key, one MP4 per rendered job. Everything that matters survives a SIGKILL of the process.
//
// workDir/jobs/<jobId>.json     the JobRecord
// workDir/keys/<sha256(key)>    the job id an idempotency key maps to
// workDir/videos/<jobId>.mp4    the rendered video (appears atomically)
// workDir/tmp/                  temp files, renamed or linked into place
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { NormalizedRequest } from '../types';
import { createFileExclusive, isErrno, ownerPidOfTemp, readFileIfExists, writeFileAtomic } from './atomic-file';

export type FailureKind = 'retryable' | 'terminal';

export interface JobRecord {
  id: string;
  request: NormalizedRequest;
  idempotency_key?: string;
  created_at_ms: number;
  /** Fixed at submit time, so a restart with other options does not change a running job. */
  duration_ms: number;
  fps: number;
  /** Set at submit time for a doomed job: it fails halfway through. */
  failure?: FailureKind;
  cancelled_at_ms?: number;
  /** Set once the gateway has stored the video and this copy was deleted. */
  released_at_ms?: number;
}

const JOB_ID = /^sim_[0-9a-f]{24}$/;

export function newJobId(): string {
  return `sim_${randomBytes(12).toString('hex')}`;
}

export class JobStore {
  readonly tmpDir: string;
  private readonly jobsDir: string;
  private readonly keysDir: string;
  private readonly videosDir: string;
  private dirsReady?: Promise<void>;

  constructor(workDir: string) {
    this.tmpDir = path.join(workDir, 'tmp');
    this.jobsDir = path.join(workDir, 'jobs');
    this.keysDir = path.join(workDir, 'keys');
    this.videosDir = path.join(workDir, 'videos');
  }

  /** The job, or undefined if unknown (including ids that are not ours). */
  async read(id: string): Promise<JobRecord | undefined> {
    if (!JOB_ID.test(id)) return undefined;
    const text = await readFileIfExists(this.jobFile(id));
    return text === undefined ? undefined : (JSON.parse(text) as JobRecord);
  }

  /** Writes a new job unless one with its id exists already. */
  async create(job: JobRecord): Promise<void> {
    await this.ensureDirs();
    await createFileExclusive(this.jobFile(job.id), JSON.stringify(job), this.tmpDir);
  }

  async update(job: JobRecord): Promise<void> {
    await writeFileAtomic(this.jobFile(job.id), JSON.stringify(job), this.tmpDir);
  }

  /** Maps key to candidateId unless it is mapped already; returns the id the key maps to. */
  async claimKey(key: string, candidateId: string): Promise<string> {
    await this.ensureDirs();
    const file = path.join(this.keysDir, createHash('sha256').update(key).digest('hex'));
    if (await createFileExclusive(file, candidateId, this.tmpDir)) return candidateId;
    return (await fs.readFile(file, 'utf8')).trim();
  }

  videoFile(id: string): string {
    return path.join(this.videosDir, `${id}.mp4`);
  }

  async list(): Promise<JobRecord[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.jobsDir);
    } catch {
      return [];
    }
    const jobs = await Promise.all(names.filter((n) => n.endsWith('.json')).map((n) => this.read(n.slice(0, -5))));
    return jobs.filter((j): j is JobRecord => j !== undefined);
  }

  /**
   * Deletes the temp files of processes that are gone (a render or write cut short by a crash). Our own pid
   * counts as gone: this runs before this process writes any, and a container's gateway gets the same pid
   * on every start. Synchronous: it runs once, at start.
   */
  removeStaleTempFiles(): void {
    let names: string[];
    try {
      names = readdirSync(this.tmpDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    for (const name of names) {
      const pid = ownerPidOfTemp(name);
      if (pid === undefined || pid === process.pid || !isAlive(pid)) rmSync(path.join(this.tmpDir, name), { force: true });
    }
  }

  private jobFile(id: string): string {
    return path.join(this.jobsDir, `${id}.json`);
  }

  private ensureDirs(): Promise<void> {
    this.dirsReady ??= Promise.all(
      [this.tmpDir, this.jobsDir, this.keysDir, this.videosDir].map((d) => fs.mkdir(d, { recursive: true })),
    ).then(() => undefined);
    return this.dirsReady;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM'); // alive, but someone else's
  }
}

/** Every job in workDir, e.g. for asserting that no idempotency key was submitted twice. */
export function listJobs(workDir: string): Promise<JobRecord[]> {
  return new JobStore(workDir).list();
}
