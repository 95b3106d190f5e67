import { InvalidArgumentError } from 'commander';
import { IMAGE_STATES, INSTANCE_STATES } from '../../entities/states';
import { type TableName, columnNames } from '../../entities/tables';

/**
 * Argument parsers. They throw commander's InvalidArgumentError, so a bad
 * value is reported like any usage error ("error: option '--limit <n>'
 * argument 'x' is invalid. ...") and the CLI exits with 2.
 */

const MAX_ID = Number.MAX_SAFE_INTEGER;

export function instanceID(raw: string): number {
  if (!/^\d{1,16}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_ID) {
    throw new InvalidArgumentError(`"${raw}" is not an instance ID (a positive integer).`);
  }
  return Number(raw);
}

export function nonNegativeInteger(raw: string): number {
  if (!/^\d{1,16}$/.test(raw) || Number(raw) > MAX_ID) throw new InvalidArgumentError(`"${raw}" is not a whole number (0 or more).`);
  return Number(raw);
}

export function positiveInteger(raw: string): number {
  const n = nonNegativeInteger(raw);
  if (n < 1) throw new InvalidArgumentError(`"${raw}" must be 1 or more.`);
  return n;
}

/** Seconds, for --timeout: a positive number up to a day. */
export function seconds(raw: string): number {
  if (!/^\d+(\.\d+)?$/.test(raw) || Number(raw) <= 0 || Number(raw) > 86400) {
    throw new InvalidArgumentError(`"${raw}" is not a number of seconds (more than 0, at most 86400).`);
  }
  return Number(raw);
}

/** Columns the instances listing knows: `inst.X`, `img.X`, or a bare column (instance first, then image), as the API does. */
export const CONTENT_COLUMNS: readonly string[] = [
  ...columnNames('vm_Instances'),
  ...columnNames('vm_Images').filter((c) => !columnNames('vm_Instances').includes(c)),
  ...columnNames('vm_Instances').map((c) => `inst.${c}`),
  ...columnNames('vm_Images').map((c) => `img.${c}`),
];

function knownColumn(name: string, allowed: readonly string[], what: string): string {
  const match = allowed.find((c) => c.toLowerCase() === name.toLowerCase());
  if (!match) {
    const qualified = allowed.some((c) => c.includes('.')) ? '; or inst.<Column>, img.<Column>' : '';
    throw new InvalidArgumentError(`unknown ${what} "${name}" (one of ${allowed.filter((c) => !c.includes('.')).join(', ')}${qualified}).`);
  }
  return match;
}

/** `--sort Field[:ASC|DESC][,Field2:DESC...]` → the API's `F:ASC,G:DESC`. */
export function sortSpec(raw: string): string {
  const items = raw.split(',').map((s) => s.trim());
  if (items.some((s) => !s)) throw new InvalidArgumentError(`"${raw}" is not a sort list (Field:ASC or Field:DESC, comma-separated).`);
  return items
    .map((item) => {
      const parts = item.split(':');
      if (parts.length > 2) throw new InvalidArgumentError(`"${item}" is not Field:ASC or Field:DESC.`);
      const field = knownColumn(parts[0], CONTENT_COLUMNS, 'sort field');
      const direction = (parts[1] ?? 'ASC').toUpperCase();
      if (direction !== 'ASC' && direction !== 'DESC') {
        throw new InvalidArgumentError(`unknown sort direction "${parts[1]}" in "${item}" (use ASC or DESC).`);
      }
      return `${field}:${direction}`;
    })
    .join(',');
}

/** A comma-separated list of instance states (ORed by the API), each one checked. */
export function instanceStatuses(raw: string): string {
  return statuses(raw, INSTANCE_STATES, 'instance status');
}

export function imageStatuses(raw: string): string {
  return statuses(raw, IMAGE_STATES, 'image status');
}

function statuses(raw: string, valid: readonly string[], what: string): string {
  return raw
    .split(',')
    .map((s) => {
      const match = valid.find((v) => v.toLowerCase() === s.trim().toLowerCase());
      if (!match) throw new InvalidArgumentError(`unknown ${what} "${s.trim()}" (one of ${valid.join(', ')}).`);
      return match;
    })
    .join(',');
}

/** A non-empty filter value (names may be comma-separated: the API ORs them). */
export function filterValue(raw: string): string {
  if (!raw.trim()) throw new InvalidArgumentError('an empty value matches nothing.');
  if (/[\u0000-\u001f\u007f]/.test(raw)) throw new InvalidArgumentError('control characters are not allowed.');
  return raw;
}

/** `--filter Column=Value`, repeatable; accumulates into a record. */
export function filterPair(columns: readonly string[]) {
  return (raw: string, previous: Record<string, string> = {}): Record<string, string> => {
    const at = raw.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError(`"${raw}" is not Column=Value.`);
    const column = knownColumn(raw.slice(0, at).trim(), columns, 'filter column');
    return { ...previous, [column]: filterValue(raw.slice(at + 1)) };
  };
}

/** A column of one table (case-insensitive; returns its real spelling). */
export function columnOfTable(table: TableName, what: string) {
  return (raw: string): string => knownColumn(raw.trim(), columnNames(table), what);
}
