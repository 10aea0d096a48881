// `npx vidgate ...`: the admin API from the command line. Talks to a running gateway over HTTP
// (--url or VIDGATE_URL, default http://127.0.0.1:8080) with VIDGATE_ADMIN_TOKEN; tables for people, --json
// for scripts. Exit codes: see EXIT.
import fs from 'node:fs';
import Table from 'cli-table3';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { CLI_USER_AGENT } from './core/audit';
import { projectPath } from './project-root';

/** The exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  /** The gateway answered with an error (the error is printed). */
  apiError: 1,
  /** The command line is wrong, or VIDGATE_ADMIN_TOKEN is not set; nothing was sent. */
  usage: 2,
  /** No answer from the gateway at the URL. */
  unreachable: 3,
} as const;

const DEFAULT_URL = 'http://127.0.0.1:8080';
const VERSION = (JSON.parse(fs.readFileSync(projectPath('package.json'), 'utf8')) as { version: string }).version;
const REQUEST_TIMEOUT_MS = 30_000;

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

type Call = [method: string, path: string, body?: unknown];

class UsageError extends Error {}

// Parsers keep `none` as it is (commander turns a parsed null into ''); the request bodies make it null.
type OrNone<T> = T | 'none';
const nullIfNone = <T>(value: OrNone<T> | undefined): T | null | undefined => (value === 'none' ? null : value);

const wholeOrNone = (value: string): OrNone<number> => {
  if (value === 'none') return value;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('a whole number, or none to remove the limit');
  return Number(value);
};

const unixSecondsOrNone = (value: string): OrNone<number> => {
  if (value === 'none') return value;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new InvalidArgumentError('a date such as 2026-12-31T00:00:00Z, or none');
  return Math.floor(ms / 1000);
};

const QUOTAS = [
  ['credits-per-day', 'credits a day'],
  ['credits-per-month', 'credits a month'],
  ['max-concurrent', 'tasks running at once'],
  ['reads-per-minute', 'reads (GET requests and estimates) a minute'],
  ['submits-per-minute', 'submissions (POST and DELETE requests but estimates) a minute'],
  ['requests-per-minute', 'reads and submissions a minute, each (older name: sets both)'],
] as const;

function withQuotas(cmd: Command): Command {
  for (const [flag, what] of QUOTAS) cmd.option(`--${flag} <n>`, `limit of ${what} (none removes it)`, wholeOrNone);
  return cmd;
}

function quotasOf(opts: Record<string, unknown>): { quotas?: Record<string, number | null> } {
  const quotas = Object.fromEntries(
    QUOTAS.map(([flag]) => [flag.replaceAll('-', '_'), nullIfNone(opts[flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())] as OrNone<number>)]).filter(
      ([, v]) => v !== undefined,
    ),
  );
  return Object.keys(quotas).length ? { quotas } : {};
}

function keyFields(opts: Record<string, unknown>) {
  const models = opts.models as string | undefined;
  return {
    ...(opts.name !== undefined && { name: opts.name }),
    ...(opts.expiresAt !== undefined && { expires_at: nullIfNone(opts.expiresAt as OrNone<number>) }),
    ...(models !== undefined && { allowed_models: models === 'all' ? null : models.split(',').map((m) => m.trim()) }),
    ...quotasOf(opts),
  };
}

/** The command tree; each action hands back the HTTP call to make through `call`. */
function program(io: CliIo, call: (c: Call) => void): Command {
  const root = new Command('vidgate')
    .description('Administer a running vidgate gateway: teams, API keys, usage and the credit ledger.')
    .version(VERSION)
    .option('--url <url>', 'the gateway (default: VIDGATE_URL, else http://127.0.0.1:8080)')
    .option('--json', 'print the API answer as JSON, for scripts')
    .addHelpText(
      'after',
      `
Environment:
  VIDGATE_ADMIN_TOKEN  the gateway's admin token (required; the gateway must be started with it)
  VIDGATE_URL          the gateway's URL

Exit codes: 0 done, 1 the gateway refused (its error is printed), 2 usage error, 3 cannot reach the gateway (nothing answers, or what answers is not vidgate).`,
    )
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  const enc = encodeURIComponent;

  const teams = root.command('teams').description('list, create, update teams; adjust their credits');
  teams.command('list').description('every team with its quotas').action(() => call(['GET', '/admin/teams']));
  withQuotas(teams.command('create').description('a new team').argument('<name>'))
    .action((name: string, opts) => call(['POST', '/admin/teams', { name, ...quotasOf(opts) }]));
  withQuotas(teams.command('update').description("rename a team or change its quotas").argument('<team_id>').option('--name <name>', 'new name'))
    .action((id: string, opts) => call(['PATCH', `/admin/teams/${enc(id)}`, { ...(opts.name !== undefined && { name: opts.name }), ...quotasOf(opts) }]));
  teams
    .command('adjust')
    .description('add an adjust row to the ledger (negative credits refund)')
    .argument('<team_id>')
    .requiredOption('--credits <n>', 'credits to charge, negative to refund', (v) => {
      if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError('a whole number, negative to refund');
      return Number(v);
    })
    .requiredOption('--note <text>', 'why, kept in the ledger')
    .action((id: string, opts) => call(['POST', `/admin/teams/${enc(id)}/adjustments`, { credits: opts.credits, note: opts.note }]));

  const keys = root.command('keys').description("list, create, update, rotate and revoke a team's API keys");
  keys.command('list').description("a team's keys (never the keys themselves)").argument('<team_id>').action((id: string) => call(['GET', `/admin/teams/${enc(id)}/keys`]));
  const keyOptions = (cmd: Command, noneHelp: string) =>
    withQuotas(
      cmd
        .option('--name <name>', 'a name to tell keys apart')
        .option('--expires-at <date>', `ISO date after which the key stops working${noneHelp}`, unixSecondsOrNone)
        .option('--models <m1,m2>', `the models it may use${noneHelp ? ' (all lifts the limit)' : ''}`),
    );
  keyOptions(keys.command('create').description('a new key, printed once').argument('<team_id>'), '')
    .action((id: string, opts) => call(['POST', `/admin/teams/${enc(id)}/keys`, keyFields(opts)]));
  keyOptions(keys.command('update').description("change a key's name, expiry, models or quotas").argument('<key_id>'), ' (none clears it)')
    .action((id: string, opts) => call(['PATCH', `/admin/keys/${enc(id)}`, keyFields(opts)]));
  keys
    .command('rotate')
    .description('a new key in place of this one')
    .argument('<key_id>')
    .option('--grace-seconds <n>', 'how long the old key keeps working', wholeOrNone, 0)
    .action((id: string, opts) => call(['POST', `/admin/keys/${enc(id)}/rotate`, { grace_seconds: nullIfNone(opts.graceSeconds) ?? 0 }]));
  keys.command('revoke').description('stop a key at once').argument('<key_id>').action((id: string) => call(['POST', `/admin/keys/${enc(id)}/revoke`]));

  const webhooks = root.command('webhooks').description("a team's webhook signing secret and dead-lettered deliveries");
  const secret = webhooks.command('secret').description("a team's webhook signing secret");
  secret.command('show').description('the current secret').argument('<team_id>').action((id: string) => call(['GET', `/admin/teams/${enc(id)}/webhook-secret`]));
  secret
    .command('rotate')
    .description('a new secret (the first one, or in place of the current one)')
    .argument('<team_id>')
    .option('--grace-seconds <n>', "how long the previous secret keeps signing beside the new one (the gateway's webhooks.rotation_grace_ms by default)", (v) => {
      if (!/^\d+$/.test(v)) throw new InvalidArgumentError('a whole number of seconds');
      return Number(v);
    })
    .action((id: string, opts: { graceSeconds?: number }) =>
      call(['POST', `/admin/teams/${enc(id)}/webhook-secret`, opts.graceSeconds === undefined ? {} : { grace_s: opts.graceSeconds }]));
  webhooks
    .command('dead-letters')
    .description("a team's dead-lettered events, newest first")
    .argument('<team_id>')
    .option('--limit <n>', 'the most events to list (1 to 1000; the gateway lists 100 by default)', (v) => {
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1000) throw new InvalidArgumentError('a whole number from 1 to 1000');
      return Number(v);
    })
    .action((id: string, opts: { limit?: number }) => call(['GET', `/admin/teams/${enc(id)}/dead-letters${opts.limit === undefined ? '' : `?limit=${opts.limit}`}`]));

  root
    .command('usage')
    .description("every team's usage today, or one team's with what its tasks spent")
    .argument('[team_id]')
    .action((id?: string) => call(['GET', id ? `/admin/teams/${enc(id)}/usage` : '/admin/usage']));
  root
    .command('ledger')
    .description('the credit ledger')
    .command('verify')
    .description('rebuild the quota counters from the ledger')
    .action(() => call(['POST', '/admin/ledger/verify']));
  return root;
}

/**
 * Runs one command line. Never throws: returns the exit code (EXIT) after writing to io.
 * @param argv the arguments after `vidgate`.
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  let pending: Call | undefined;
  const cmd = program(io, (c) => (pending = c));
  try {
    await cmd.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    throw err;
  }
  if (!pending) {
    // A group without its command (`vidgate keys`), or nothing at all.
    (cmd.commands.find((c) => c.name() === argv[0]) ?? cmd).outputHelp({ error: true });
    return EXIT.usage;
  }
  const { url: urlOption, json } = cmd.opts<{ url?: string; json?: boolean }>();
  const base = urlOption ?? env.VIDGATE_URL ?? DEFAULT_URL;
  try {
    return await send(pending, base, env.VIDGATE_ADMIN_TOKEN, json === true, io);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`vidgate: ${err.message}\n`);
    return EXIT.usage;
  }
}

async function send([method, path, body]: Call, base: string, token: string | undefined, json: boolean, io: CliIo): Promise<number> {
  if (!token) throw new UsageError("set VIDGATE_ADMIN_TOKEN to the gateway's admin token (the gateway must be started with the same VIDGATE_ADMIN_TOKEN)");
  let url: URL;
  try {
    url = new URL(path, base);
  } catch {
    throw new UsageError(`not a URL: ${base}`);
  }
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'User-Agent': `${CLI_USER_AGENT}/${VERSION}`, ...(body !== undefined && { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const { cause } = err as { cause?: { code?: string; message?: string } };
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    io.err(`vidgate: cannot reach vidgate at ${base} (${why}): is the gateway running there? Set VIDGATE_URL or --url\n`);
    return EXIT.unreachable;
  }
  const type = res.headers.get('content-type') ?? 'no content type';
  const answer = /^application\/json\b/i.test(type) ? ((await res.json().catch(() => undefined)) as Record<string, unknown> | undefined) : undefined;
  if (answer === undefined) {
    // vidgate answers every admin call with JSON: whatever answered is something else.
    io.err(`vidgate: what answers at ${base} is not vidgate (HTTP ${res.status}, ${type}): check VIDGATE_URL or --url\n`);
    return EXIT.unreachable;
  }
  if (json) io.out(`${JSON.stringify(answer, null, 2)}\n`);
  if (res.ok) {
    if (!json) io.out(forPeople(answer));
    return EXIT.ok;
  }
  const error = (answer?.error ?? {}) as { code?: string; message?: string };
  if (error.code === 'admin_disabled') {
    io.err(`vidgate: the admin API of the gateway at ${base} is off: start the gateway with VIDGATE_ADMIN_TOKEN set, and use the same token here\n`);
  } else if (!json) {
    io.err(`vidgate: ${res.status} ${error.code ?? ''}: ${error.message ?? 'no error message'}\n`);
  }
  return EXIT.apiError;
}

// -- Tables ----------------------------------------------------------------------------------------------

type Row = Record<string, unknown>;

/** A cell: times (`created`, `*_at`: Unix seconds) as ISO dates, lists joined, nothing as `-`. */
function cell(key: string, value: unknown): string {
  if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) return '-';
  if (/(^|\.)created$|_at$/.test(key) && typeof value === 'number') return new Date(value * 1000).toISOString().replace('.000Z', 'Z');
  if (Array.isArray(value)) return value.join(', ');
  return String(value);
}

const isListOfObjects = (v: unknown) => Array.isArray(v) && v.some((x) => typeof x === 'object' && x !== null);

/** Nested objects as `parent.child` columns; lists of objects are left for their own table. */
function flatten(row: Row, prefix = ''): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) {
    if (k === 'object' || isListOfObjects(v)) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, flatten(v as Row, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = v;
  }
  return out;
}

function listTable(rows: Row[]): string {
  if (rows.length === 0) return '(none)\n';
  const flat = rows.map((r) => flatten(r));
  const head = [...new Set(flat.flatMap(Object.keys))];
  const table = new Table({ head, style: { head: [], border: [] } });
  for (const r of flat) table.push(head.map((h) => cell(h, r[h])));
  return `${table.toString()}\n`;
}

/** A list as one table; one object as a field/value table, then a table for each list of objects it holds. */
function forPeople(answer: Row | undefined): string {
  if (!answer) return '';
  if (answer.object === 'list' && Array.isArray(answer.data)) return listTable(answer.data as Row[]);
  const table = new Table({ style: { head: [], border: [] } });
  for (const [k, v] of Object.entries(flatten(answer))) table.push({ [k]: cell(k, v) });
  let text = `${table.toString()}\n`;
  for (const [k, v] of Object.entries(answer)) {
    if (isListOfObjects(v)) text += `\n${k}:\n${listTable(v as Row[])}`;
  }
  if (typeof answer.key === 'string') text += '\nThe key is shown only this once; the gateway keeps only its hash.\n';
  return text;
}
