// One JSON line per event (pino). By default `level` is the label (`info`, `warn`, ...), `time` is ISO 8601
// UTC, the message key is `msg`, and each service names its logger; a service whose spec names other fields
// sets them once in its settings (time key, message key, level labels, no logger field).
import { mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { createStream } from 'rotating-file-stream';

export type { Logger } from 'pino';

/** Header and field paths that must never reach a log line, whatever the service. */
export const DEFAULT_REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'headers.cookie',
  'req.headers.cookie',
  'password',
  'token',
  'secret',
  'api_key',
];

export interface LoggerSettings {
  /** value of the `logger` field on every line */
  name: string;
  level?: string;
  /** also write every line to this file, rotated by size */
  file?: string;
  /** rotate the file at this size (default 10M) and keep this many old files (default 5) */
  fileMaxSize?: string;
  fileKeep?: number;
  /** extra paths to censor, on top of DEFAULT_REDACT_PATHS */
  redact?: string[];
  /** where stdout lines go (tests pass a stream) */
  destination?: DestinationStream;
  /** name of the timestamp field (default `time`) */
  timeKey?: string;
  /** name of the message field (default `msg`) */
  messageKey?: string;
  /** level labels to write instead of pino's (e.g. `{ warn: 'warning' }`); unlisted levels keep theirs */
  levelLabels?: Partial<Record<string, string>>;
  /** write the `logger` field on every line (default true) */
  loggerField?: boolean;
  /** rotate the file the logrotate way (`name.1` … `name.<fileKeep>`) instead of timestamped names */
  classicRotation?: boolean;
}

const LOGGER_NAME = Symbol('quintet.loggerName');

/** A child logger whose lines carry `logger: name` (children of it inherit the name). */
export function namedLogger(parent: Logger, name: string, bindings: Record<string, unknown> = {}): Logger {
  const child = parent.child(bindings);
  (child as unknown as Record<symbol, string>)[LOGGER_NAME] = name;
  return child;
}

/** Creates the service's root logger. */
export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? 'info',
    base: undefined,
    messageKey: settings.messageKey ?? 'msg',
    // The logger name is a field of each line, not a binding, so that a named child replaces it instead of
    // writing a second `logger` key.
    ...(settings.loggerField === false
      ? {}
      : {
          mixin: (_object: object, _level: number, instance: unknown) => ({
            logger: (instance as Record<symbol, string | undefined>)[LOGGER_NAME] ?? settings.name,
          }),
        }),
    timestamp: () => `,${JSON.stringify(settings.timeKey ?? 'time')}:"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: settings.levelLabels?.[label] ?? label }) },
    redact: { paths: [...DEFAULT_REDACT_PATHS, ...(settings.redact ?? [])], censor: '[redacted]' },
  };
  const stdout = settings.destination ?? pino.destination({ dest: 1, sync: false });
  if (!settings.file) return pino(options, stdout);
  mkdirSync(dirname(settings.file), { recursive: true });
  const file = createStream(basename(settings.file), {
    path: dirname(settings.file),
    size: settings.fileMaxSize ?? '10M',
    ...(settings.classicRotation ? { rotate: settings.fileKeep ?? 5 } : { maxFiles: settings.fileKeep ?? 5 }),
  });
  return pino(
    options,
    pino.multistream([{ stream: stdout }, { stream: file as unknown as DestinationStream }]),
  );
}

/** Flushes buffered lines (call before process exit). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      logger.flush(() => resolve());
    } catch {
      resolve();
    }
  });
}
