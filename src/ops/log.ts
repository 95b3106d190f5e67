import { Context } from '@temporalio/activity';
import type { LogLevel, LogMetadata, Logger as SdkLogger } from '@temporalio/common';
import pino, { type DestinationStream, type Level, type LevelWithSilent, type Logger } from 'pino';
import { lifecycleWorkflowId } from '../../workflows/definitions';

export type { Logger } from 'pino';

/**
 * The process logger (pino): one JSON object per line on stdout by default, a
 * short human-readable line when stdout is a terminal. The level comes from
 * VMDB_LOG_LEVEL (default info). Every line about an instance carries
 * `instanceID`, `uniqueID` (when known) and `workflowId` (`vm-<InstanceID>`).
 */

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** VMDB_LOG_LEVEL's value as a pino level; empty means info. Throws a message naming the variable. */
export function parseLogLevel(value: string | undefined, name = 'VMDB_LOG_LEVEL'): LevelWithSilent {
  const level = (value ?? '').trim().toLowerCase();
  if (level === '') return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new Error(`${name}: "${value}" is not a log level (${LOG_LEVELS.join(', ')})`);
  return level as LevelWithSilent;
}

export interface LoggerOptions {
  /** Default: VMDB_LOG_LEVEL, else info. */
  level?: string;
  /** Where the lines go; default stdout. */
  destination?: DestinationStream;
  /** Human-readable lines instead of JSON; default: when writing to stdout and stdout is a terminal. */
  pretty?: boolean;
}

/** The keys of an instance, as every line about one carries them. */
export interface InstanceFields {
  instanceID?: number;
  uniqueID?: string;
  /** Default `vm-<instanceID>`. */
  workflowId?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = parseLogLevel(options.level ?? process.env.VMDB_LOG_LEVEL);
  const toStdout = options.destination === undefined;
  const pretty = options.pretty ?? (toStdout && process.stdout.isTTY === true);
  // Synchronous writes: lines stay in order with the banner start.ts prints, and none is lost at exit.
  const json: DestinationStream = options.destination ?? pino.destination({ dest: 1, sync: true });
  const destination = pretty ? prettyStream(options.destination ?? process.stdout, toStdout && process.stdout.isTTY === true) : json;
  return pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    },
    destination,
  );
}

let processWide: Logger | undefined;

/** The process's logger, made on first use (VMDB_LOG_LEVEL is read then). */
export function processLogger(): Logger {
  processWide ??= createLogger();
  return processWide;
}

/** Replaces the process's logger (tests capture lines this way). */
/** The end of a process entry point: log what stopped it (plainly if logging itself is misconfigured), exit 1. */
export function exitOnFatal(err: unknown): never {
  try {
    processLogger().fatal({ err }, (err as Error).message);
  } catch {
    console.error((err as Error).message); // VMDB_LOG_LEVEL itself is wrong
  }
  process.exit(1);
}

export function setProcessLogger(logger: Logger): void {
  processWide = logger;
}

/** `vm-<id>` -> id; undefined for any other workflow id (the Director's, the sweep's). */
export function instanceIDOfWorkflowId(workflowId: unknown): number | undefined {
  if (typeof workflowId !== 'string') return undefined;
  const match = /^vm-(\d{1,15})$/.exec(workflowId);
  return match ? Number(match[1]) : undefined;
}

/** The fields of an instance's lines, without the unknown ones. */
export function instanceFields({ instanceID, uniqueID, workflowId }: InstanceFields): Record<string, string | number> {
  const fields: Record<string, string | number> = {};
  if (instanceID !== undefined) fields.instanceID = instanceID;
  if (uniqueID) fields.uniqueID = uniqueID;
  const wf = workflowId ?? (instanceID !== undefined ? lifecycleWorkflowId(instanceID) : undefined);
  if (wf !== undefined) fields.workflowId = wf;
  return fields;
}

/** A child of `parent` (default the process logger) for the lines about one instance. */
export function instanceLogger(fields: InstanceFields, parent: Logger = processLogger()): Logger {
  return parent.child(instanceFields(fields));
}

/**
 * Inside an activity: a child logger with the activity's workflow id, the instance that workflow
 * runs (`vm-<InstanceID>`) unless `fields` name another, and the activity type. Outside an
 * activity, an instance logger of `fields`.
 */
export function activityLogger(fields: InstanceFields = {}, parent: Logger = processLogger()): Logger {
  let info: Context['info'] | undefined;
  try {
    info = Context.current().info;
  } catch {
    return instanceLogger(fields, parent);
  }
  const own = info.workflowExecution?.workflowId;
  const instanceID = fields.instanceID ?? instanceIDOfWorkflowId(own);
  // About an instance: its life-cycle workflow; otherwise (a Director pass) the activity's own workflow.
  const workflowId = fields.workflowId ?? (instanceID !== undefined ? lifecycleWorkflowId(instanceID) : own);
  return parent.child({ ...instanceFields({ instanceID, uniqueID: fields.uniqueID, workflowId }), activity: info.activityType });
}

const SDK_LEVELS: Record<LogLevel, Level> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/**
 * The Temporal SDK's Logger over pino, for Runtime.install({ logger }): the SDK's, the
 * workflows' and the activities' context logs become structured lines. Their `workflowId`
 * gives the `instanceID` of a life-cycle workflow; the task token is left out.
 */
export class PinoSdkLogger implements SdkLogger {
  constructor(private readonly logger: Logger) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const method = SDK_LEVELS[level] ?? 'info';
    if (!this.logger.isLevelEnabled(method)) return;
    const fields: Record<string, unknown> = {};
    if (meta) {
      for (const [key, value] of Object.entries(meta)) if (key !== 'taskToken') fields[key] = value;
      if (fields.instanceID === undefined) {
        const instanceID = instanceIDOfWorkflowId(fields.workflowId);
        if (instanceID !== undefined) fields.instanceID = instanceID;
      }
    }
    this.logger[method](fields, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

/** The SDK level that lets through what `level` lets through (for Core's own log filter). */
export function sdkLevelOf(level: string): LogLevel {
  switch (level) {
    case 'trace':
      return 'TRACE';
    case 'debug':
      return 'DEBUG';
    case 'info':
      return 'INFO';
    case 'warn':
      return 'WARN';
    default:
      return 'ERROR';
  }
}

// ---- the terminal format ------------------------------------------------------

const FIRST_KEYS = ['instanceID', 'uniqueID', 'workflowId'];
const HIDDEN_KEYS = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'err', 'error']);
const COLOURS: Record<string, string> = { trace: '90', debug: '36', info: '32', warn: '33', error: '31', fatal: '35' };

/**
 * A destination that turns pino's JSON lines into `12:00:01.234 INFO  message key=value ...`,
 * instance keys first and an error's stack below. Small on purpose: no pino-pretty.
 */
export function prettyStream(out: { write(text: string): unknown }, colour = false): DestinationStream {
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        out.write(line);
        return;
      }
      out.write(`${formatPretty(entry, colour)}\n`);
    },
  };
}

export function formatPretty(entry: Record<string, unknown>, colour = false): string {
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : new Date().toISOString().slice(11, 23);
  const label = String(entry.level ?? 'info');
  const levelText = label.toUpperCase().padEnd(5);
  const level = colour && COLOURS[label] ? `\x1b[${COLOURS[label]}m${levelText}\x1b[0m` : levelText;
  const keys = [...FIRST_KEYS.filter((k) => k in entry), ...Object.keys(entry).filter((k) => !FIRST_KEYS.includes(k) && !HIDDEN_KEYS.has(k))];
  const pairs = keys.map((k) => `${k}=${show(entry[k])}`);
  let text = `${time} ${level} ${String(entry.msg ?? '')}${pairs.length ? `  ${pairs.join(' ')}` : ''}`;
  for (const key of ['err', 'error']) {
    const err = entry[key] as { stack?: string; message?: string } | undefined;
    if (err && typeof err === 'object') text += `\n    ${(err.stack ?? err.message ?? JSON.stringify(err)).split('\n').join('\n    ')}`;
    else if (err !== undefined) text += ` ${key}=${show(err)}`;
  }
  return text;
}

function show(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]*$/.test(value) && value !== '' ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}
