// The real logger (pino, as src/core/logger.ts makes it) writing into memory, for tests that read what was logged.
import { createLogger, type Logger, type LogLevel } from '../../src/core/logger';

/** One parsed log line: pino's `level` (name), `time`, `msg`, and the line's own fields. */
export type LogEntry = { level: string; msg: string; time: string } & Record<string, unknown>;

export interface CapturedLog {
  log: Logger;
  /** Every line written so far, as the JSON text the process would write. */
  lines: string[];
  /** The lines parsed. */
  entries: () => LogEntry[];
}

/** A logger at `level` (debug by default: every line) that keeps its lines. */
export function captureLogger(level: LogLevel = 'debug'): CapturedLog {
  const lines: string[] = [];
  const log = createLogger(level, { write: (line: string) => void lines.push(line.trimEnd()) });
  return { log, lines, entries: () => lines.map((l) => JSON.parse(l) as LogEntry) };
}
