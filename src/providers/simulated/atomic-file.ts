// Crash-safe file writes: content is always written to a temp file first, so a reader never sees
// a half-written file. All temp files live in one directory on the same filesystem as their targets.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** A fresh temp path in tmpDir, unique across processes. */
export function tempPathIn(tmpDir: string, base: string): string {
  return path.join(tmpDir, `${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** The pid that created a temp file named by tempPathIn; undefined for a name it did not make. */
export function ownerPidOfTemp(name: string): number | undefined {
  const pid = /\.(\d+)\.[0-9a-f]{12}\.tmp$/.exec(name)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

/** Replaces dest with data atomically (write temp + rename). */
export async function writeFileAtomic(dest: string, data: string, tmpDir: string): Promise<void> {
  const tmp = tempPathIn(tmpDir, path.basename(dest));
  await fs.writeFile(tmp, data);
  await fs.rename(tmp, dest);
}

/** Creates dest with data atomically unless it already exists (write temp + hard link). Returns whether it created it. */
export async function createFileExclusive(dest: string, data: string, tmpDir: string): Promise<boolean> {
  const tmp = tempPathIn(tmpDir, path.basename(dest));
  await fs.writeFile(tmp, data);
  try {
    await fs.link(tmp, dest);
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** The file's content, or undefined if it does not exist. */
export async function readFileIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

export function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
