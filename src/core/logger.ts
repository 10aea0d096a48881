// The log: pino's JSON lines on stderr, one object a line: `level` (its name), `time` (ISO 8601), `pid`, `hostname`,
// `msg`, then the line's own fields. Call sites use pino's API: `log.info({ fields }, 'message')`, and `log.child()`
// to bind what every line about one thing carries (`request_id`, `task_id`). Keys, secrets and prompts are never
// passed; the redaction below is a second line of defence, not the first.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** The levels `log_level` takes, most verbose first; `silent` writes nothing. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The text that replaces a redacted value. */
export const REDACTED = '[redacted]';

/**
 * Field names whose values never reach a line, at the top level or one level down (pino's `redact`): credentials
 * (API keys, the admin token, webhook secrets, signed links' tokens) and what tenants wrote (prompts).
 */
const SECRET_FIELDS = ['authorization', 'api_key', 'key', 'admin_token', 'token', 'secret', 'webhook_secret', 'password', 'prompt'];
export const REDACT_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]);

/**
 * A logger at `level` writing to `destination` (stderr by default, synchronously, so that nothing is lost when
 * the process exits). Tests pass a stream of their own to read the lines.
 */
export function createLogger(level: LogLevel = 'info', destination: DestinationStream = pino.destination({ fd: 2, sync: true })): Logger {
  return pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    destination,
  );
}

/** What identifies a task in the log: its id, and the team it belongs to. */
export interface TaskIdentity {
  id: string;
  /** The team's id (tasks belong to a team). */
  owner_id?: string;
  /** The task's request as stored (JSON with its `prompt`): an `error` field's text is cleared of the prompt. */
  request_json?: string;
}

/** Prompts shorter than this are not searched for in error texts (they would cut ordinary words). */
const MIN_REDACTED_PROMPT_LENGTH = 4;

/**
 * `text` with every verbatim copy of `prompt` (as written, and JSON-escaped as in a quoted body) replaced by
 * `[redacted]`: providers quote the prompt in their error messages and bodies. A provider that quotes a cut or
 * rewritten prompt is not caught.
 */
export function withoutPrompt(text: string, prompt: string | undefined): string {
  if (prompt === undefined || prompt.length < MIN_REDACTED_PROMPT_LENGTH) return text;
  const escaped = JSON.stringify(prompt).slice(1, -1);
  return text.split(prompt).join(REDACTED).split(escaped).join(REDACTED);
}

function promptOf(requestJson: string): string | undefined {
  try {
    const prompt = (JSON.parse(requestJson) as { prompt?: unknown }).prompt;
    return typeof prompt === 'string' ? prompt : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A child of `log` whose lines carry `task_id` (and `team_id` when the task's team is known); with the task's
 * `request_json`, its `error` field is cleared of the prompt (`withoutPrompt`).
 */
export function taskLog(log: Logger, task: TaskIdentity): Logger {
  const bindings = task.owner_id === undefined ? { task_id: task.id } : { task_id: task.id, team_id: task.owner_id };
  const requestJson = task.request_json;
  if (requestJson === undefined) return log.child(bindings);
  // Provider errors are logged in `error`; some quote the prompt back.
  return log.child(bindings, { serializers: { error: (value: unknown) => (typeof value === 'string' ? withoutPrompt(value, promptOf(requestJson)) : value) } });
}
