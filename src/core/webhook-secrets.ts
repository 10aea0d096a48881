// Each team's webhook signing secret (`whsec_` and 32 random bytes in base64, the Standard Webhooks form), kept
// encrypted in the store with AES-256-GCM under a key of the installation, so that it can be recovered to sign and
// a copy of the database alone reveals nothing. Signing itself is the `standardwebhooks` package's.
import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { Store } from '../store/types';

/** The encrypted form's version, then the 12-byte IV, the 16-byte tag and the ciphertext, each in base64url. */
const FORMAT = 'aes256gcm';

/** The team's secrets: rotation, revealing the current one to an admin, and signing a delivery with all in force. */
export interface WebhookSecrets {
  /**
   * A new current secret for the team; the ones signing until now keep signing for `graceMs` (both signatures are
   * sent), then stop. Returns the new secret, to give the team.
   */
  rotate(teamId: string, graceMs: number): Promise<{ secret: string; created_at_ms: number; previous_expire_at_ms: number }>;
  /** The team's current secret and when it was made, or undefined when it has none yet. */
  current(teamId: string): Promise<{ secret: string; created_at_ms: number } | undefined>;
  /**
   * The `webhook-signature` header for one delivery: a `v1,<base64>` signature by each secret in force, newest
   * first, separated by spaces. A team without a secret is given one first (an admin can read it, or rotate it).
   */
  sign(teamId: string, msgId: string, timestamp: Date, body: string): Promise<string>;
}

/** `key`: 32 bytes (AES-256) from the installation's key file or the environment; never logged. */
export function createWebhookSecrets(store: Store, key: Buffer, now: () => number): WebhookSecrets {
  if (key.length !== 32) throw new Error('the webhook secrets key must be 32 bytes');

  function encrypt(secret: string): string {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
    const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return [FORMAT, iv, cipher.getAuthTag(), ciphertext].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
  }

  /** @throws Error when the text was not made under this key (another installation's key, or tampered with). */
  function decrypt(encrypted: string): string {
    const [format, iv, tag, ciphertext] = encrypted.split('.');
    if (format !== FORMAT || !iv || !tag || ciphertext === undefined) throw new Error('unknown encrypted secret format');
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
  }

  async function rotate(teamId: string, graceMs: number) {
    const secret = `whsec_${crypto.randomBytes(32).toString('base64')}`;
    const createdAtMs = now();
    const previousExpireAtMs = createdAtMs + graceMs;
    await store.putWebhookSecret(
      { id: `whs_${crypto.randomBytes(12).toString('hex')}`, team_id: teamId, secret_encrypted: encrypt(secret), created_at_ms: createdAtMs },
      previousExpireAtMs,
    );
    return { secret, created_at_ms: createdAtMs, previous_expire_at_ms: previousExpireAtMs };
  }

  /** The secrets that sign now, newest first. */
  async function inForce(teamId: string): Promise<{ secret: string; created_at_ms: number }[]> {
    return (await store.signingSecrets(teamId, now())).map((s) => ({ secret: decrypt(s.secret_encrypted), created_at_ms: s.created_at_ms }));
  }

  return {
    rotate,
    async current(teamId) {
      return (await inForce(teamId))[0];
    },
    async sign(teamId, msgId, timestamp, body) {
      let secrets = await inForce(teamId);
      if (secrets.length === 0) {
        await rotate(teamId, 0);
        secrets = await inForce(teamId); // the newest, should two processes have made one at once
      }
      return secrets.map((s) => new Webhook(s.secret).sign(msgId, timestamp, body)).join(' ');
    },
  };
}
