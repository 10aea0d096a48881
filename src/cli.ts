// `npx vidgate ...`: the admin API from the command line. Talks to a running gateway over HTTP
// (VIDGATE_URL, default http://127.0.0.1:8080) with VIDGATE_ADMIN_TOKEN.
import { parseArgs } from 'node:util';

const USAGE = `usage: vidgate <command> [options]

  teams list
  teams create <name> [quota options]
  teams update <team_id> [--name NAME] [quota options]
  teams adjust <team_id> --credits N --note TEXT      (an adjust ledger row; negative N refunds)
  keys list <team_id>
  keys create <team_id> [--name NAME] [--expires-at ISO-DATE] [--models m1,m2] [quota options]
  keys update <key_id> [--name NAME] [--expires-at ISO-DATE|none] [--models m1,m2|all] [quota options]
  keys rotate <key_id> [--grace-seconds N]
  keys revoke <key_id>
  usage [<team_id>]
  ledger verify                                        (rebuild the quota counters from the ledger)

quota options: --credits-per-day N  --credits-per-month N  --max-concurrent N
               --reads-per-minute N  --submits-per-minute N  (--requests-per-minute N sets both)
               (N = none removes a limit)
environment:   VIDGATE_URL (default http://127.0.0.1:8080), VIDGATE_ADMIN_TOKEN (required)`;

const QUOTA_FLAGS = ['credits-per-day', 'credits-per-month', 'max-concurrent', 'reads-per-minute', 'submits-per-minute', 'requests-per-minute'] as const;

class UsageError extends Error {}

function intOrNone(flag: string, value: string): number | null {
  if (value === 'none') return null;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} must be a whole number or none`);
  return Number(value);
}

function unixSeconds(value: string): number | null {
  if (value === 'none') return null;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new UsageError(`--expires-at must be a date such as 2026-12-31T00:00:00Z, or none`);
  return Math.floor(ms / 1000);
}

export async function runCli(argv: string[], env: NodeJS.ProcessEnv, print: (s: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      'expires-at': { type: 'string' },
      models: { type: 'string' },
      'grace-seconds': { type: 'string' },
      credits: { type: 'string' },
      note: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      'credits-per-day': { type: 'string' },
      'credits-per-month': { type: 'string' },
      'max-concurrent': { type: 'string' },
      'reads-per-minute': { type: 'string' },
      'submits-per-minute': { type: 'string' },
      'requests-per-minute': { type: 'string' },
    },
  });
  const [group, command, target] = positionals;
  if (values.help || !group) {
    print(USAGE);
    return values.help ? 0 : 2;
  }
  const quotas = Object.fromEntries(
    QUOTA_FLAGS.filter((f) => values[f] !== undefined).map((f) => [f.replaceAll('-', '_'), intOrNone(f, values[f] as string)]),
  );
  const need = (what: string) => {
    if (!target) throw new UsageError(`missing <${what}>`);
    return encodeURIComponent(target);
  };
  const models = values.models === undefined ? undefined : values.models === 'all' ? null : values.models.split(',').map((m) => m.trim());
  const keyFields = {
    ...(values.name !== undefined && { name: values.name }),
    ...(values['expires-at'] !== undefined && { expires_at: unixSeconds(values['expires-at']) }),
    ...(models !== undefined && { allowed_models: models }),
    ...(Object.keys(quotas).length && { quotas }),
  };

  const routes: Record<string, () => [method: string, path: string, body?: unknown]> = {
    'teams list': () => ['GET', '/admin/teams'],
    'teams create': () => ['POST', '/admin/teams', { name: decodeURIComponent(need('name')), ...(Object.keys(quotas).length && { quotas }) }],
    'teams update': () => ['PATCH', `/admin/teams/${need('team_id')}`, { ...(values.name !== undefined && { name: values.name }), ...(Object.keys(quotas).length && { quotas }) }],
    'teams adjust': () => {
      if (!/^-?\d+$/.test(values.credits ?? '') || !values.note) throw new UsageError('teams adjust needs --credits N and --note TEXT');
      return ['POST', `/admin/teams/${need('team_id')}/adjustments`, { credits: Number(values.credits), note: values.note }];
    },
    'ledger verify': () => ['POST', '/admin/ledger/verify'],
    'keys list': () => ['GET', `/admin/teams/${need('team_id')}/keys`],
    'keys create': () => ['POST', `/admin/teams/${need('team_id')}/keys`, keyFields],
    'keys update': () => ['PATCH', `/admin/keys/${need('key_id')}`, keyFields],
    'keys rotate': () => ['POST', `/admin/keys/${need('key_id')}/rotate`, { grace_seconds: intOrNone('grace-seconds', values['grace-seconds'] ?? '0') ?? 0 }],
    'keys revoke': () => ['POST', `/admin/keys/${need('key_id')}/revoke`],
  };
  const route: (() => [string, string, unknown?]) | undefined =
    group === 'usage' ? () => ['GET', command ? `/admin/teams/${encodeURIComponent(command)}/usage` : '/admin/usage'] : routes[`${group} ${command}`];
  if (!route) throw new UsageError(`unknown command '${[group, command].filter(Boolean).join(' ')}'`);
  const token = env.VIDGATE_ADMIN_TOKEN;
  if (!token) throw new UsageError('set VIDGATE_ADMIN_TOKEN to the gateway admin token');

  const [method, path, body] = route();
  const res = await fetch(new URL(path, env.VIDGATE_URL ?? 'http://127.0.0.1:8080'), {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined && { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  print(JSON.stringify(await res.json(), null, 2));
  return res.ok ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runCli(process.argv.slice(2), process.env, (s) => process.stdout.write(`${s}\n`)).then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`vidgate: ${err.message}\n${err instanceof UsageError ? `\n${USAGE}\n` : ''}`);
      process.exit(2);
    },
  );
}
