import { INSTANCE_STATES } from '../../entities/states';
import { type ColumnSpec, type TableName, columnOf } from '../../entities/tables';
import { quote, whereClause, limitClause } from './conditions';
import type { Executor } from './database';
import { ensureImage, forceError } from './lifecycle';
import { type Result, S_ERROR, S_OK } from './result';
import { toRecord, toValue } from './rows';
import { toSqlTime } from './time';
import { count, datetime, fail, plainObject, show } from './validate';

/** Read-only queries of the facade (and the status reads that may flag an invalid status). */

async function oneInstanceValue(ex: Executor, column: string, by: string, value: unknown): Promise<Result<unknown>> {
  const rows = await ex.select(`SELECT ${quote(column)} FROM \`vm_Instances\` WHERE ${quote(by)} = ?`, [value]);
  if (rows.length === 0) return S_ERROR(`Unknown ${by} = ${String(value)}`, undefined, 'not_found');
  if (rows.length > 1) return S_ERROR(`${by} is not unique: ${String(value)}`);
  return S_OK(toValue(columnOf('vm_Instances', column), rows[0][column]));
}

export const getInstanceID = (ex: Executor, uniqueID: string) =>
  oneInstanceValue(ex, 'InstanceID', 'UniqueID', uniqueID) as Promise<Result<number>>;
export const getUniqueID = (ex: Executor, instanceID: number) =>
  oneInstanceValue(ex, 'UniqueID', 'InstanceID', instanceID) as Promise<Result<string>>;
export const getEndpoint = (ex: Executor, uniqueID: string) =>
  oneInstanceValue(ex, 'Endpoint', 'UniqueID', uniqueID) as Promise<Result<string>>;
export const getInstanceParameter = (ex: Executor, column: string, instanceID: number) =>
  oneInstanceValue(ex, column, 'InstanceID', instanceID);

export async function getUniqueIDByName(ex: Executor, name: string): Promise<Result<string>> {
  const rows = await ex.select('SELECT `UniqueID` FROM `vm_Instances` WHERE `Name` = ?', [name]);
  if (rows.length === 0) return S_ERROR('Instance not found');
  if (rows.length > 1) return S_ERROR(`Instance name is not unique: ${name}`);
  return S_OK(String(rows[0].UniqueID));
}

/** Status of an instance; Error returns its message, an invalid status turns the row into Error. */
export async function getInstanceStatus(ex: Executor, instanceID: number): Promise<Result<string>> {
  const rows = await ex.select('SELECT `Status`, `ErrorMessage` FROM `vm_Instances` WHERE `InstanceID` = ?', [instanceID]);
  if (rows.length === 0) return S_ERROR(`Unknown InstanceID = ${instanceID}`, undefined, 'not_found');
  const status = String(rows[0].Status);
  if (status === 'Error') return S_ERROR(String(rows[0].ErrorMessage || `Instance ${instanceID} is in Error`));
  if (!(INSTANCE_STATES as readonly string[]).includes(status)) {
    const message = `Invalid Status: ${status}`;
    await forceError(ex, 'Instance', instanceID, message, undefined, status);
    return S_ERROR(message);
  }
  return S_OK(status);
}

export async function checkImageStatus(ex: Executor, imageName: string): Promise<Result<string>> {
  const image = await ensureImage(ex, imageName);
  return image.OK ? S_OK(image.Value.status) : image;
}

export async function getAllInfoForUniqueID(
  ex: Executor,
  uniqueID: string,
): Promise<Result<{ Image: Record<string, unknown>; Instance: Record<string, unknown> }>> {
  const instances = await ex.select('SELECT * FROM `vm_Instances` WHERE `UniqueID` = ?', [uniqueID]);
  if (instances.length === 0) return S_ERROR(`Unknown UniqueID = ${uniqueID}`, undefined, 'not_found');
  if (instances.length > 1) return S_ERROR(`UniqueID is not unique: ${uniqueID}`);
  const [image] = await ex.select('SELECT * FROM `vm_Images` WHERE `VMImageID` = ?', [instances[0].VMImageID]);
  return S_OK({ Image: image ? toRecord('vm_Images', image) : {}, Instance: toRecord('vm_Instances', instances[0]) });
}

export async function getInstancesByStatus(ex: Executor, status: string): Promise<Result<Record<string, string[]>>> {
  const rows = await ex.select(
    'SELECT img.`Name` AS imageName, inst.`UniqueID` AS uniqueID FROM `vm_Instances` inst JOIN `vm_Images` img ON img.`VMImageID` = inst.`VMImageID` WHERE inst.`Status` = ? ORDER BY inst.`InstanceID`',
    [status],
  );
  const byImage: Record<string, string[]> = {};
  for (const row of rows) (byImage[String(row.imageName)] ??= []).push(String(row.uniqueID));
  return S_OK(byImage);
}

/** The columns getInstancesContent returns, as `alias.Column`. */
export const CONTENT_FIELDS = [
  'inst.InstanceID',
  'inst.Name',
  'inst.UniqueID',
  'inst.Endpoint',
  'inst.RunningPod',
  'inst.VMImageID',
  'inst.Status',
  'inst.PublicIP',
  'inst.PrivateIP',
  'inst.ErrorMessage',
  'inst.LastUpdate',
  'inst.Load',
  'inst.Uptime',
  'inst.Jobs',
  'img.Name',
  'img.Status',
] as const;

const ALIAS_TABLE: Record<string, TableName> = { inst: 'vm_Instances', img: 'vm_Images' };

/** `inst.Status`, `img.Name`, or a bare column (instance first, then image); undefined when unknown. */
function contentField(name: string): { sql: string; table: TableName; spec: ColumnSpec } | undefined {
  const [alias, column] = name.includes('.') ? name.split('.', 2) : [undefined, name];
  for (const candidate of alias ? [alias] : ['inst', 'img']) {
    const table = Object.hasOwn(ALIAS_TABLE, candidate) ? ALIAS_TABLE[candidate] : undefined;
    const spec = table && columnOf(table, column);
    if (spec) return { sql: `${candidate}.${quote(spec.name)}`, table, spec };
  }
  return undefined;
}

/** One ORDER BY key of a content query: a checked field and its direction. */
interface SortKey {
  name: string;
  field: NonNullable<ReturnType<typeof contentField>>;
  dir: 'ASC' | 'DESC';
}

/** The FROM and WHERE of a content query, its bound values, and its order (InstanceID last). */
interface ContentQuery {
  from: string;
  params: unknown[];
  filtered: boolean;
  keys: SortKey[];
}

function contentQuery(selDict: unknown, sortList: unknown): ContentQuery {
  const terms: string[] = [];
  const params: unknown[] = [];
  // Unknown fields are ignored, as in the original; known ones are bound like any value.
  for (const [name, raw] of Object.entries(plainObject('selDict', selDict))) {
    const field = contentField(name);
    if (!field) continue;
    const where = whereClause(field.table, { condDict: { [field.spec.name]: raw } });
    terms.push(where.sql.replace(/^WHERE /, '').replaceAll(quote(field.spec.name), field.sql));
    params.push(...where.params);
  }
  const keys: SortKey[] = [];
  let lastDirection: 'ASC' | 'DESC' = 'ASC';
  for (const item of Array.isArray(sortList) ? sortList : []) {
    const [name, direction] = Array.isArray(item) ? item : [item, 'ASC'];
    const field = typeof name === 'string' ? contentField(name) : undefined;
    const dir = typeof direction === 'string' ? direction.toUpperCase() : '';
    if (field && (dir === 'ASC' || dir === 'DESC')) {
      keys.push({ name: `${field.sql.split('.')[0]}.${field.spec.name}`, field, dir });
      lastDirection = dir;
    }
  }
  // Ties go by InstanceID in the direction of the last sort key: an index on (filter, sort key)
  // then serves the page in order, where a mixed direction would sort every match first.
  keys.push({ name: 'inst.InstanceID', field: contentField('inst.InstanceID')!, dir: lastDirection });
  const from = `FROM \`vm_Instances\` inst JOIN \`vm_Images\` img ON img.\`VMImageID\` = inst.\`VMImageID\`${terms.length ? ` WHERE ${terms.join(' AND ')}` : ''}`;
  return { from, params, filtered: terms.length > 0, keys };
}

const CONTENT_COLUMNS = () => CONTENT_FIELDS.map((name) => contentField(name)!);
const orderBy = (keys: readonly SortKey[]) => `ORDER BY ${keys.map((k) => `${k.field.sql} ${k.dir}`).join(', ')}`;

export async function getInstancesContent(
  ex: Executor,
  selDict: unknown,
  sortList: unknown,
  start: unknown,
  limit: unknown,
): Promise<Result<{ ParameterNames: string[]; Records: unknown[][]; TotalRecords: number }>> {
  const { from, params, keys } = contentQuery(selDict, sortList);
  const [{ total }] = await ex.select(`SELECT COUNT(*) AS total ${from}`, params);
  const columns = CONTENT_COLUMNS();
  const pageParams = [...params];
  const page = limitClause(limit, start, pageParams);
  const rows = await ex.select(`SELECT ${columns.map((c, i) => `${c.sql} AS c${i}`).join(', ')} ${from} ${orderBy(keys)} ${page}`, pageParams);
  return S_OK({
    ParameterNames: [...CONTENT_FIELDS],
    Records: rows.map((row) => columns.map((c, i) => toValue(c.spec, row[`c${i}`]))),
    TotalRecords: Number(total),
  });
}

// ---- keyset pages ------------------------------------------------------------------------

/** Above this many matches (MySQL/MariaDB) a page's total is an estimate: counting them all costs too much. */
export const EXACT_TOTAL_CAP = 10_000;

export interface InstancesPageOptions {
  selDict?: unknown;
  sortList?: unknown;
  /** The `Next` cursor of the previous page, for the same sort; excludes `start`. */
  after?: string | null;
  /** An offset, as getInstancesContent's `start` (reads every row before it). */
  start?: number;
  /** Rows per page, at least 1. */
  limit: number;
  /** Above this many matches the total is estimated (MySQL/MariaDB; SQLite always counts). */
  exactTotalCap?: number;
}

export interface InstancesPage {
  ParameterNames: string[];
  Records: unknown[][];
  /** Exact when TotalExact, else an estimate (then always above the cap). */
  TotalRecords: number;
  TotalExact: boolean;
  /** The cursor of the next page, or null when this page is the last. */
  Next: string | null;
}

/** The sort a cursor belongs to, as text: `inst.Name:ASC,inst.InstanceID:ASC`. */
const sortSignature = (keys: readonly SortKey[]) => keys.map((k) => `${k.name}:${k.dir}`).join(',');

function encodeCursor(keys: readonly SortKey[], values: readonly unknown[]): string {
  const k = values.map((value, i) => (value === null || value === undefined ? null : keys[i].field.spec.kind === 'datetime' ? toSqlTime(value as Date) : value));
  return Buffer.from(JSON.stringify({ s: sortSignature(keys), k }), 'utf8').toString('base64url');
}

const malformed = (): never => fail('after: the cursor is malformed (pass the Next value of a page as it came)');

/** A cursor's key values, checked against the sort in force and each key's column type. */
function decodeCursor(keys: readonly SortKey[], cursor: unknown): unknown[] {
  if (typeof cursor !== 'string' || cursor.length === 0 || cursor.length > 4096 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return malformed();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return malformed();
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return malformed();
  const { s, k } = parsed as { s?: unknown; k?: unknown };
  if (typeof s !== 'string' || !Array.isArray(k)) return malformed();
  const expected = sortSignature(keys);
  if (s !== expected) fail(`after: the cursor belongs to another sort (${s.slice(0, 200)}), not this one (${expected})`);
  if (k.length !== keys.length) return malformed();
  return k.map((value, i) => {
    const { spec } = keys[i].field;
    if (value === null) return spec.nullable ? null : malformed();
    switch (spec.kind) {
      case 'integer':
        return Number.isSafeInteger(value) && (value as number) >= 0 ? value : malformed();
      case 'float':
        return typeof value === 'number' && Number.isFinite(value) ? value : malformed();
      case 'datetime':
        return typeof value === 'string' && /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(value) ? datetime('after', value) : malformed();
      default:
        return typeof value === 'string' && value.length <= (spec.length ?? 255) ? value : malformed();
    }
  });
}

/**
 * The rows after a cursor's in the order of `keys`: (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...,
 * with ">" meaning "later in this key's direction". NULL sorts first ascending and last
 * descending, in both dialects. The first key also gets a plain bound (k1 >= v1), which an
 * index on k1 serves as a range.
 */
function afterClause(ex: Executor, keys: readonly SortKey[], values: readonly unknown[], params: unknown[]): string {
  // MySQL's FLOAT is single precision: a value read back compares equal only to the same single.
  const slot = (key: SortKey) => (key.field.spec.kind === 'float' && ex.dialect !== 'sqlite' ? 'CAST(? AS FLOAT)' : '?');
  const eq = (key: SortKey, value: unknown): string => {
    if (value === null) return `${key.field.sql} IS NULL`;
    params.push(value);
    return `${key.field.sql} = ${slot(key)}`;
  };
  const later = (key: SortKey, value: unknown, orEqual = false): string | undefined => {
    const op = (key.dir === 'ASC' ? '>' : '<') + (orEqual ? '=' : '');
    if (value === null) {
      if (key.dir === 'ASC') return orEqual ? undefined : `${key.field.sql} IS NOT NULL`;
      return orEqual ? `${key.field.sql} IS NULL` : '1 = 0';
    }
    params.push(value);
    const bound = `${key.field.sql} ${op} ${slot(key)}`;
    return key.dir === 'DESC' && key.field.spec.nullable ? `(${bound} OR ${key.field.sql} IS NULL)` : bound;
  };
  const terms: string[] = [];
  const leading = keys.length > 1 ? later(keys[0], values[0], true) : undefined;
  const alternatives: string[] = [];
  for (let i = 0; i < keys.length; i++) {
    const parts = keys.slice(0, i).map((key, j) => eq(key, values[j]));
    parts.push(later(keys[i], values[i])!);
    alternatives.push(parts.length === 1 ? parts[0] : `(${parts.join(' AND ')})`);
  }
  if (leading) terms.push(leading);
  terms.push(alternatives.length === 1 ? alternatives[0] : `(${alternatives.join(' OR ')})`);
  return terms.join(' AND ');
}

/** The number of matches: exact up to the cap (and always on SQLite), else the optimizer's estimate. */
async function pageTotal(ex: Executor, query: ContentQuery, cap: number): Promise<{ total: number; exact: boolean }> {
  if (ex.dialect === 'sqlite') {
    const [{ total }] = await ex.select(`SELECT COUNT(*) AS total ${query.from}`, query.params);
    return { total: Number(total), exact: true };
  }
  const [{ total }] = await ex.select(`SELECT COUNT(*) AS total FROM (SELECT 1 AS one ${query.from} LIMIT ?) capped`, [...query.params, cap + 1]);
  if (Number(total) <= cap) return { total: Number(total), exact: true };
  let estimate = 0;
  if (!query.filtered) {
    const [row] = await ex.select(
      "SELECT `TABLE_ROWS` AS n FROM information_schema.`TABLES` WHERE `TABLE_SCHEMA` = DATABASE() AND `TABLE_NAME` = 'vm_Instances'",
    );
    estimate = Number(row?.n ?? 0);
  } else {
    // A nested-loop join: the rows it expects are the product of each step's rows, times what its filter keeps.
    const plan = await ex.select(`EXPLAIN SELECT 1 ${query.from}`, query.params);
    estimate = plan.reduce((product, step) => product * Number(step.rows ?? 1) * (Number(step.filtered ?? 100) / 100), 1);
  }
  return { total: Math.max(Math.round(estimate), cap + 1), exact: false };
}

/**
 * A page of getInstancesContent's rows by keyset (`after`, the previous page's `Next`) or by
 * offset (`start`), with the cursor of the next page and a total that is exact when it is cheap.
 */
export async function getInstancesPage(ex: Executor, options: InstancesPageOptions): Promise<Result<InstancesPage>> {
  const query = contentQuery(options.selDict ?? {}, options.sortList ?? []);
  const limit = count('limit', options.limit);
  if (limit < 1) fail('limit must be at least 1');
  const start = options.start === undefined ? 0 : count('start', options.start);
  const hasAfter = options.after !== undefined && options.after !== null;
  if (hasAfter && start > 0) fail('after and start exclude each other: a cursor is a position already');
  const cap = options.exactTotalCap === undefined ? EXACT_TOTAL_CAP : count('exactTotalCap', options.exactTotalCap);
  const columns = CONTENT_COLUMNS();
  const params = [...query.params];
  let from = query.from;
  if (hasAfter) {
    const values = decodeCursor(query.keys, options.after);
    from += `${query.filtered ? ' AND ' : ' WHERE '}${afterClause(ex, query.keys, values, params)}`;
  }
  // The keys are selected again, raw, so that the cursor holds exactly what the database compares.
  const keySql = query.keys.map((k, i) => `${k.field.sql} AS k${i}`);
  params.push(limit + 1);
  if (start > 0) params.push(start);
  const rows = await ex.select(
    `SELECT ${[...columns.map((c, i) => `${c.sql} AS c${i}`), ...keySql].join(', ')} ${from} ${orderBy(query.keys)} LIMIT ?${start > 0 ? ' OFFSET ?' : ''}`,
    params,
  );
  const more = rows.length > limit;
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const { total, exact } = await pageTotal(ex, query, cap);
  return S_OK({
    ParameterNames: [...CONTENT_FIELDS],
    Records: page.map((row) => columns.map((c, i) => toValue(c.spec, row[`c${i}`]))),
    TotalRecords: total,
    TotalExact: exact,
    Next: more && last ? encodeCursor(query.keys, query.keys.map((k, i) => toValue(k.field.spec, last[`k${i}`]))) : null,
  });
}

export async function getHistoryForInstanceID(
  ex: Executor,
  instanceID: number,
): Promise<Result<{ ParameterNames: string[]; Records: unknown[][] }>> {
  const names = ['Status', 'Load', 'Update', 'Jobs', 'TransferredFiles', 'TransferredBytes'];
  const rows = await ex.select(
    `SELECT ${names.map(quote).join(', ')} FROM \`vm_History\` WHERE \`InstanceID\` = ? ORDER BY \`Update\` ASC`,
    [instanceID],
  );
  return S_OK({
    ParameterNames: names,
    Records: rows.map((row) => names.map((name) => toValue(columnOf('vm_History', name), row[name]))),
  });
}

export async function getInstanceCounters(ex: Executor, groupField: string, selDict: unknown): Promise<Result<Record<string, number>>> {
  const group = columnOf('vm_Instances', groupField) ?? fail(`${typeof groupField === 'string' ? groupField : show(groupField)} is not a valid field`);
  const where = whereClause('vm_Instances', { condDict: selDict });
  const rows = await ex.select(
    `SELECT ${quote(group.name)} AS value, COUNT(*) AS n FROM \`vm_Instances\` ${where.sql} GROUP BY ${quote(group.name)}`,
    where.params,
  );
  return S_OK(Object.fromEntries(rows.map((row) => [String(toValue(group, row.value)), Number(row.n)])));
}
