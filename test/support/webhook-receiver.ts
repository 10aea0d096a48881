// A real HTTPS webhook receiver on 127.0.0.1 with its own CA (made with the openssl CLI), which vidgate is
// configured to trust (`outbound.ca_file`, its origin in `outbound.trusted_origins`). Every delivery's Standard
// Webhooks signature is verified with the `standardwebhooks` package against the team's secret; a delivery with a
// bad or missing signature is answered 401 and recorded in `badSignatures`, which tests assert empty.
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { tempDir } from './gateway';
import { makeTestCa } from './test-ca';

export interface Delivery {
  id: string;
  timestamp_s: number;
  /** Signatures in the header (a rotation sends two). */
  signatures: number;
  path: string;
  body: unknown;
  /** The body and headers as received, to verify again with a given secret. */
  raw: string;
  headers: Record<string, string>;
  /** When it arrived (Date.now()). */
  at_ms: number;
  /** What `onDelivery` returned, for assertions made at the moment of receipt (the ledger, say). */
  seen?: unknown;
}

/** How the receiver answers one delivery: a status, or `hang` (no answer until the connection closes). */
export type Answer = number | 'hang';

export interface ReceiverOptions {
  /** The secrets a delivery may be signed with (any one valid signature passes). */
  secrets: () => Promise<string[]>;
  answer?: (d: Delivery) => Answer;
  onDelivery?: (d: Delivery) => Promise<unknown>;
}

export interface Receiver {
  /** https://127.0.0.1:<port> */
  origin: string;
  /** The CA file to give vidgate as `outbound.ca_file`. */
  caFile: string;
  deliveries: Delivery[];
  badSignatures: string[];
  /** TCP connections accepted so far. */
  connections(): number;
  setAnswer(answer: (d: Delivery) => Answer): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(options: ReceiverOptions): Promise<Receiver> {
  const dir = tempDir('vidgate-receiver-');
  const ca = makeTestCa(dir);

  let answer = options.answer ?? (() => 200);
  const deliveries: Delivery[] = [];
  const badSignatures: string[] = [];
  const hanging = new Set<import('node:http').ServerResponse>();
  const server = https.createServer({ key: fs.readFileSync(ca.keyFile), cert: fs.readFileSync(ca.certFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
        const secrets = await options.secrets();
        const valid = secrets.some((s) => {
          try {
            new Webhook(s).verify(raw, headers);
            return true;
          } catch {
            return false;
          }
        });
        if (!valid) {
          badSignatures.push(`${headers['webhook-id'] ?? '(no id)'}: ${headers['webhook-signature'] ?? '(no signature)'}`);
          res.statusCode = 401;
          return void res.end();
        }
        const d: Delivery = {
          id: headers['webhook-id']!,
          timestamp_s: Number(headers['webhook-timestamp']),
          signatures: headers['webhook-signature']!.split(' ').length,
          path: req.url ?? '/',
          body: JSON.parse(raw) as unknown,
          raw,
          headers,
          at_ms: Date.now(),
        };
        if (options.onDelivery) d.seen = await options.onDelivery(d);
        deliveries.push(d);
        const a = answer(d);
        if (a === 'hang') return void hanging.add(res);
        res.statusCode = a;
        res.end();
      })();
    });
  });
  let connections = 0;
  server.on('connection', () => void (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caFile: ca.caFile,
    deliveries,
    badSignatures,
    connections: () => connections,
    setAnswer(a) {
      answer = a;
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
