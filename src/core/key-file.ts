// A secret key kept in the data directory, so that every process of one deployment (and every restart) uses the
// same one: the image links' HMAC key, the key that encrypts webhook signing secrets.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** 32 random bytes, written once with mode 0600 (exclusively, so concurrent starters agree on one key). */
export function loadOrCreateKey(file: string): Buffer {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    fs.writeFileSync(file, crypto.randomBytes(32), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return fs.readFileSync(file);
}
