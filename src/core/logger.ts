// Structured one-line JSON logs on stderr. Never pass secrets (API keys) in `fields`.
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export function createLogger(level: 'info' | 'warn' | 'silent' = 'info'): Logger {
  const write = (lvl: string, message: string, fields?: LogFields) =>
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: lvl, message, ...fields }) + '\n');
  return {
    info: (m, f) => level === 'info' && write('info', m, f),
    warn: (m, f) => level !== 'silent' && write('warn', m, f),
    error: (m, f) => level !== 'silent' && write('error', m, f),
  };
}
