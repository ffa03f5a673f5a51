/**
 * Structured logging in Cloud Logging's JSON form: one JSON object a line with
 * `severity`, `message` and the action's token and task as labels, so one
 * action's whole life can be filtered in Logs Explorer. Never pass message
 * content or credentials here.
 */

/** Labels that tie a line to an action. */
export interface LogLabels {
  token?: string;
  task?: string;
  user?: string;
}

export type Severity = 'DEBUG' | 'INFO' | 'NOTICE' | 'WARNING' | 'ERROR';

/** A logger bound to some labels. */
export interface Logger {
  log(severity: Severity, message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  with(labels: LogLabels): Logger;
}

/** A logger writing Cloud Logging JSON lines to `write` (stdout by default). */
export function createLogger(
  labels: LogLabels = {},
  write: (line: string) => void = (l) => process.stdout.write(l + '\n'),
): Logger {
  const log = (severity: Severity, message: string, fields?: Record<string, unknown>) => {
    const entry: Record<string, unknown> = { severity, message, time: new Date().toISOString(), ...fields };
    const l = Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== undefined));
    if (Object.keys(l).length) entry['logging.googleapis.com/labels'] = l;
    write(JSON.stringify(entry));
  };
  return {
    log,
    info: (m, f) => log('INFO', m, f),
    warn: (m, f) => log('WARNING', m, f),
    error: (m, f) => log('ERROR', m, f),
    with: (more) => createLogger({ ...labels, ...more }, write),
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = createLogger({}, () => {});
