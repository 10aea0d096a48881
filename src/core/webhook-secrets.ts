// Each team's webhook signing secret (`whsec_` and 32 random bytes in base64, the Standard Webhooks form), kept
// encrypted in the store with AES-256-GCM under a key of the installation, so that it can be recovered to sign and
// a copy of the database alone reveals nothing. Signing itself is the `standardwebhooks` package's.
import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { Store } from '../store/types';

/** The encrypted form's version, then the 12-byte IV, the 16-byte tag and the ciphertext, each in base64url. */
const FORMAT = 'aes256gcm';

/**
 * No secret of the team in force can be decrypted with this installation's key (the key file was lost or replaced,
 * or VIDGATE_WEBHOOK_SECRETS_KEY changed): nothing can be signed until the team's secret is rotated.
 */
export class WebhookSecretUnreadable extends Error {
  override name = 'WebhookSecretUnreadable';
  constructor(readonly teamId: string) {
    super(`the webhook secret of team '${teamId}' cannot be decrypted with this installation's key (the key was lost or replaced): rotate it`);
  }
}

/** The team's secrets: rotation, revealing the current one to an admin, and signing a delivery with all in force. */
export interface WebhookSecrets {
  /**
   * A new current secret for the team; the one signing until now (when it can be decrypted) keeps signing for
   * `graceMs` beside it (both signatures are sent), then stops; any older one, and one that cannot be decrypted,
   * stops at once: at most two secrets sign. Returns the new secret, to give the team, and when the previous one
   * stops signing (undefined when none signs on).
   */
  rotate(teamId: string, graceMs: number): Promise<{ secret: string; created_at_ms: number; previous_expire_at_ms: number | undefined }>;
  /**
   * The team's current secret, when it was made, and when the previous one (in a rotation's grace) stops signing;
   * undefined when it has none yet.
   * @throws WebhookSecretUnreadable when it cannot be decrypted with this installation's key.
   */
  current(teamId: string): Promise<{ secret: string; created_at_ms: number; previous_expire_at_ms: number | undefined } | undefined>;
  /**
   * The `webhook-signature` header for one delivery: a `v1,<base64>` signature by each secret in force that can be
   * decrypted, newest first, separated by spaces (one that cannot is left out). A team without a secret is given one
   * first (an admin can read it, or rotate it).
   * @throws WebhookSecretUnreadable when the team has secrets in force and none can be decrypted.
   */
  sign(teamId: string, msgId: string, timestamp: Date, body: string): Promise<string>;
  /** The teams having a secret in force that cannot be decrypted with this installation's key (checked at start). */
  unreadableTeams(): Promise<string[]>;
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

  /** The secret, or undefined when the text was not made under this key (another key, or tampered with). */
  function decrypt(encrypted: string): string | undefined {
    const [format, iv, tag, ciphertext] = encrypted.split('.');
    if (format !== FORMAT || !iv || !tag || ciphertext === undefined) return undefined;
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** The secrets that sign now, newest first; `secret` undefined for one that cannot be decrypted. */
  async function inForce(teamId: string) {
    return (await store.signingSecrets(teamId, now())).map((s) => ({ ...s, secret: decrypt(s.secret_encrypted) }));
  }

  async function rotate(teamId: string, graceMs: number) {
    const secret = `whsec_${crypto.randomBytes(32).toString('base64')}`;
    const createdAtMs = now();
    const [current] = await inForce(teamId);
    const keep = current?.secret !== undefined && graceMs > 0 ? { id: current.id, expires_at_ms: createdAtMs + graceMs } : undefined;
    await store.putWebhookSecret(
      { id: `whs_${crypto.randomBytes(12).toString('hex')}`, team_id: teamId, secret_encrypted: encrypt(secret), created_at_ms: createdAtMs },
      keep,
    );
    return { secret, created_at_ms: createdAtMs, previous_expire_at_ms: keep?.expires_at_ms };
  }

  return {
    rotate,
    async current(teamId) {
      const [newest, previous] = await inForce(teamId);
      if (newest === undefined) return undefined;
      if (newest.secret === undefined) throw new WebhookSecretUnreadable(teamId);
      return { secret: newest.secret, created_at_ms: newest.created_at_ms, previous_expire_at_ms: previous?.expires_at_ms ?? undefined };
    },
    async sign(teamId, msgId, timestamp, body) {
      let secrets = await inForce(teamId);
      if (secrets.length === 0) {
        // The first secret, unless another signer (here or in another replica) made it meanwhile: then that one.
        const secret = `whsec_${crypto.randomBytes(32).toString('base64')}`;
        const first = { id: `whs_${crypto.randomBytes(12).toString('hex')}`, team_id: teamId, secret_encrypted: encrypt(secret), created_at_ms: now() };
        await store.putFirstWebhookSecret(first);
        secrets = await inForce(teamId);
      }
      const readable = secrets.flatMap((s) => (s.secret === undefined ? [] : [s.secret]));
      if (readable.length === 0) throw new WebhookSecretUnreadable(teamId);
      return readable.map((secret) => new Webhook(secret).sign(msgId, timestamp, body)).join(' ');
    },
    async unreadableTeams() {
      const teams = await store.listTeams();
      const unreadable = await Promise.all(teams.map(async (t) => ((await inForce(t.id)).some((s) => s.secret === undefined) ? [t.id] : [])));
      return unreadable.flat();
    },
  };
}
