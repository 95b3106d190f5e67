import { isIP } from 'node:net';
import { countProblem, describeValue, figureProblem } from '../../entities/heartbeat';
import { isValidState, type ObjectKind } from '../../entities/states';
import { type ColumnSpec, type TableName, columnOf } from '../../entities/tables';
import { InputError } from './result';
import { toSqlTime } from './time';

/**
 * Input checks. Each returns the clean value or throws InputError naming the
 * argument and the problem; the facade turns that into `OK: false`.
 */

export const show = describeValue;

export function fail(message: string): never {
  throw new InputError(message);
}

/** Identifier-like text (names, unique ids, endpoints): no quotes, separators or whitespace. */
const TOKEN = /^[A-Za-z0-9_.:@/+=,~#-]*$/;
const TOKEN_HINT = 'letters, digits and _ . : @ / + = , ~ # -';
// Free text may hold anything printable, never control characters.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

export function token(name: string, value: unknown, maxLength: number, { allowEmpty = false, extra = '' } = {}): string {
  if (typeof value !== 'string') fail(`${name} must be a string, got ${show(value)}`);
  if (!allowEmpty && value.length === 0) fail(`${name} must not be empty`);
  if (value.length > maxLength) fail(`${name} is too long (${value.length} characters, at most ${maxLength})`);
  const bad = [...new Set([...value].filter((c) => !TOKEN.test(c) && !extra.includes(c)))];
  if (bad.length > 0) {
    fail(`${name} contains characters that are not allowed: ${bad.map((c) => JSON.stringify(c)).join(' ')} (allowed: ${TOKEN_HINT}${extra ? ` ${extra}` : ''})`);
  }
  return value;
}

export function freeText(name: string, value: unknown, maxLength: number): string {
  if (typeof value !== 'string') fail(`${name} must be a string, got ${show(value)}`);
  if (value.length > maxLength) fail(`${name} is too long (${value.length} characters, at most ${maxLength})`);
  if (CONTROL.test(value)) fail(`${name} contains control characters`);
  if (!value.isWellFormed()) fail(`${name} is not well-formed Unicode (unpaired surrogate)`);
  return value;
}

/** A row id: a non-negative integer, as a number or a string of digits. */
export function id(name: string, value: unknown): number {
  const n = typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) fail(`${name} must be a non-negative integer, got ${show(value)}`);
  return n;
}

export function count(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  const problem = countProblem(name, value, max);
  if (problem) fail(problem);
  return value as number;
}

export function figure(name: string, value: unknown): number {
  const problem = figureProblem(name, value);
  if (problem) fail(problem);
  return value as number;
}

export function ipAddress(name: string, value: unknown, maxLength: number): string {
  if (typeof value !== 'string') fail(`${name} must be a string, got ${show(value)}`);
  if (value !== '' && isIP(value) === 0) fail(`${name} is not an IP address: ${show(value)}`);
  if (value.length > maxLength) fail(`${name} is too long (${value.length} characters, at most ${maxLength})`);
  return value;
}

export function state(kind: ObjectKind, value: unknown): string {
  if (!isValidState(kind, value)) fail(`Status ${show(value)} is not known`);
  return value as string;
}

export function column(table: TableName, name: unknown, what = 'field'): ColumnSpec {
  const spec = columnOf(table, name);
  if (!spec) fail(`${show(name)} is not a valid ${what} of ${table}`);
  return spec;
}

/** A plain `{ key: value }` object; Dates, Buffers and class instances are refused (they would read as "no condition"). */
export function plainObject(name: string, value: unknown): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  const proto = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (typeof value !== 'object' || (proto !== Object.prototype && proto !== null)) fail(`${name} must be a plain object, got ${show(value)}`);
  return value as Record<string, unknown>;
}

export function list(name: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) fail(`${name} must be an array, got ${show(value)}`);
  return value;
}

export function datetime(name: string, value: unknown): string {
  if (value instanceof Date && !Number.isNaN(value.getTime())) return toSqlTime(value);
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z?$/.test(value)) {
    const date = new Date(value.includes('T') ? value : `${value.replace(' ', 'T')}Z`);
    if (!Number.isNaN(date.getTime())) return toSqlTime(date);
  }
  return fail(`${name} must be a Date or a UTC 'YYYY-MM-DD HH:MM:SS' string, got ${show(value)}`);
}

const FREE_TEXT_COLUMNS = new Set(['ErrorMessage']);
const IP_COLUMNS = new Set(['PublicIP', 'PrivateIP']);

/** A value for `table.column`, checked against the column's type, range and length. */
export function columnValue(table: TableName, spec: ColumnSpec, value: unknown, { like = false } = {}): unknown {
  const name = `${table}.${spec.name}`;
  if (value === null || value === undefined) {
    if (spec.nullable) return null;
    fail(`${name} must not be null`);
  }
  switch (spec.kind) {
    case 'integer':
      return typeof value === 'string' ? id(name, value) : count(name, value, spec.max);
    case 'float':
      return figure(name, value);
    case 'datetime':
      return datetime(name, value);
    case 'varchar': {
      if (spec.name === 'Status' && !like) return state(table === 'vm_Images' ? 'Image' : 'Instance', value);
      if (IP_COLUMNS.has(spec.name) && !like) return ipAddress(name, value, spec.length!);
      if (FREE_TEXT_COLUMNS.has(spec.name)) return freeText(name, value, spec.length!);
      return token(name, value, spec.length!, { allowEmpty: true, extra: like ? '%' : '' });
    }
  }
}
