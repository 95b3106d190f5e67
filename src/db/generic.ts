import { type TableName, columnNames, isTableName } from '../../entities/tables';
import { type ConditionArgs, limitClause, orderClause, quote, whereClause } from './conditions';
import type { Executor } from './database';
import { type Result, S_OK } from './result';
import { toRecord, toValue } from './rows';
import { column, columnValue, fail, list, plainObject, show } from './validate';

/** The generic table helpers of DIRAC's DB base class, over vmdb's three tables only. */

export function table(name: unknown): TableName {
  if (!isTableName(name)) fail(`${show(name)} is not a vmdb table`);
  return name;
}

// Status columns change only through the state methods, which check the transition table and write history.
function refuseStatusWrite(target: TableName, names: string[]): void {
  if (target !== 'vm_History' && names.includes('Status')) {
    fail(`${target}.Status changes only through the state methods (declareInstance*, checkImageStatus, ...)`);
  }
}

/** Field names and values from (fields, values) or a dict, each checked against its column. */
function assignments(target: TableName, fields: unknown, values: unknown, dict: unknown, what: string): [string, unknown][] {
  let pairs: [unknown, unknown][];
  if (dict !== undefined && dict !== null) {
    pairs = Object.entries(plainObject(`${what}Dict`, dict));
  } else {
    const names = list(`${what}Fields`, fields);
    const given = list(`${what}Values`, values);
    if (names.length !== given.length) fail(`${what}Fields and ${what}Values differ in length (${names.length} and ${given.length})`);
    pairs = names.map((name, i) => [name, given[i]]);
  }
  if (pairs.length === 0) fail(`No fields given to ${what}`);
  return pairs.map(([name, value]) => {
    const spec = column(target, name);
    if (spec.autoIncrement && what === 'update') fail(`${target}.${spec.name} is the primary key and cannot be updated`);
    return [spec.name, columnValue(target, spec, value)];
  });
}

export async function getFields(
  ex: Executor,
  target: TableName,
  outFields: unknown,
  args: ConditionArgs,
): Promise<Result<unknown[][]>> {
  const names = outFields === undefined || outFields === null || (Array.isArray(outFields) && outFields.length === 0)
    ? columnNames(target)
    : list('outFields', outFields).map((name) => column(target, name).name);
  const where = whereClause(target, args);
  const params = [...where.params];
  const tail = [orderClause(target, args.orderAttribute), limitClause(args.limit, args.offset, params)].filter(Boolean).join(' ');
  const rows = await ex.select(`SELECT ${names.map(quote).join(', ')} FROM ${quote(target)} ${where.sql} ${tail}`, params);
  return S_OK(rows.map((row) => names.map((name) => toRecord(target, { [name]: row[name] })[name])));
}

export async function insertFields(
  ex: Executor,
  target: TableName,
  inFields: unknown,
  inValues: unknown,
  inDict: unknown,
): Promise<Result<number> & { lastRowId?: number }> {
  const pairs = assignments(target, inFields, inValues, inDict, 'in');
  const status = pairs.find(([name]) => name === 'Status');
  if (target !== 'vm_History' && !status) fail(`${target}.Status is required`);
  const result = await ex.write(
    `INSERT INTO ${quote(target)} (${pairs.map(([name]) => quote(name)).join(', ')}) VALUES (${pairs.map(() => '?').join(', ')})`,
    pairs.map(([, value]) => value),
  );
  return { ...S_OK(result.affected), lastRowId: result.insertId };
}

/** UPDATE/DELETE with an optional ORDER BY ... LIMIT, which SQLite spells through rowid. */
function limitedWhere(ex: Executor, target: TableName, args: ConditionArgs): { sql: string; params: unknown[] } {
  const where = whereClause(target, args);
  const params = [...where.params];
  const order = orderClause(target, args.orderAttribute);
  const limit = limitClause(args.limit, undefined, params);
  if (!limit) return { sql: where.sql, params };
  if (ex.dialect === 'mysql') return { sql: [where.sql, order, limit].filter(Boolean).join(' '), params };
  return { sql: `WHERE rowid IN (SELECT rowid FROM ${quote(target)} ${where.sql} ${order} ${limit})`, params };
}

export async function updateFields(
  ex: Executor,
  target: TableName,
  fields: unknown,
  values: unknown,
  dict: unknown,
  args: ConditionArgs,
): Promise<Result<number>> {
  const pairs = assignments(target, fields, values, dict, 'update');
  refuseStatusWrite(target, pairs.map(([name]) => name));
  const where = limitedWhere(ex, target, args);
  const result = await ex.write(
    `UPDATE ${quote(target)} SET ${pairs.map(([name]) => `${quote(name)} = ?`).join(', ')} ${where.sql}`,
    [...pairs.map(([, value]) => value), ...where.params],
  );
  return S_OK(result.affected);
}

export async function deleteEntries(ex: Executor, target: TableName, args: ConditionArgs): Promise<Result<number>> {
  const where = limitedWhere(ex, target, args);
  const result = await ex.write(`DELETE FROM ${quote(target)} ${where.sql}`, where.params);
  return S_OK(result.affected);
}

export async function countEntries(ex: Executor, target: TableName, args: ConditionArgs): Promise<Result<number>> {
  const where = whereClause(target, args);
  const [row] = await ex.select(`SELECT COUNT(*) AS n FROM ${quote(target)} ${where.sql}`, where.params);
  return S_OK(Number(row.n));
}

export async function getCounters(
  ex: Executor,
  target: TableName,
  attrList: unknown,
  args: ConditionArgs,
): Promise<Result<[Record<string, unknown>, number][]>> {
  const specs = list('attrList', attrList).map((name) => column(target, name));
  if (specs.length === 0) fail('attrList must name at least one field');
  const names = specs.map((spec) => quote(spec.name)).join(', ');
  const where = whereClause(target, args);
  const rows = await ex.select(`SELECT ${names}, COUNT(*) AS vmdb_count FROM ${quote(target)} ${where.sql} GROUP BY ${names}`, where.params);
  return S_OK(
    rows.map((row) => [Object.fromEntries(specs.map((spec) => [spec.name, toValue(spec, row[spec.name])])), Number(row.vmdb_count)]),
  );
}

export async function getDistinctAttributeValues(
  ex: Executor,
  target: TableName,
  attribute: unknown,
  args: ConditionArgs,
): Promise<Result<unknown[]>> {
  const spec = column(target, attribute);
  const where = whereClause(target, args);
  const rows = await ex.select(
    `SELECT DISTINCT ${quote(spec.name)} AS value FROM ${quote(target)} ${where.sql} ORDER BY ${quote(spec.name)}`,
    where.params,
  );
  return S_OK(rows.map((row) => toValue(spec, row.value)));
}
