import { type ColumnSpec, type TableName, TABLE_NAMES, columnOf } from '../../entities/tables';
import { columnValue, count, fail, plainObject, show } from './validate';

/** A WHERE clause and its bound values; identifiers come only from the table description. */
export interface Condition {
  sql: string;
  params: unknown[];
}

export interface ConditionArgs {
  condDict?: unknown;
  older?: unknown;
  newer?: unknown;
  timeStamp?: unknown;
  orderAttribute?: unknown;
  limit?: unknown;
  greater?: unknown;
  smaller?: unknown;
  offset?: unknown;
  useLikeQuery?: unknown;
}

const present = (value: unknown): boolean => value !== undefined && value !== null;

export const quote = (identifier: string): string => `\`${identifier}\``;

interface ResolvedColumn {
  spec: ColumnSpec;
  /** The value checked against the column, in whichever table (without a table: any that has it) accepts it. */
  bind(value: unknown, options?: { like?: boolean }): unknown;
}

/** The column named `name` in `table`, or (no table given) in any vmdb table, checked. */
function resolve(table: TableName | undefined, name: unknown): ResolvedColumn {
  const owners = (table ? [table] : TABLE_NAMES).filter((candidate) => columnOf(candidate, name));
  if (owners.length === 0) return fail(`${show(name)} is not a valid field${table ? ` of ${table}` : ''}`);
  const specs = owners.map((owner) => ({ owner, spec: columnOf(owner, name)! }));
  return {
    spec: specs[0].spec,
    bind(value, options) {
      let firstError: unknown;
      for (const { owner, spec } of specs) {
        try {
          return columnValue(owner, spec, value, options);
        } catch (err) {
          firstError ??= err;
        }
      }
      throw firstError;
    },
  };
}

function bounded(table: TableName | undefined, name: string, value: unknown, op: string, params: unknown[]): string {
  const column = resolve(table, name);
  params.push(column.bind(value));
  return `${quote(column.spec.name)} ${op} ?`;
}

/** WHERE part of DIRAC's buildCondition: condDict, older/newer on timeStamp, greater/smaller bounds. */
export function whereClause(table: TableName | undefined, args: ConditionArgs): Condition {
  const terms: string[] = [];
  const params: unknown[] = [];
  const like = args.useLikeQuery === true;
  for (const [name, raw] of Object.entries(plainObject('condDict', args.condDict))) {
    const column = resolve(table, name);
    const spec = column.spec;
    const values = Array.isArray(raw) ? raw : [raw];
    if (values.length === 0) {
      terms.push('1 = 0'); // an empty list of allowed values matches nothing
      continue;
    }
    const alternatives = values.map((value) => {
      if (value === null || value === undefined) return `${quote(spec.name)} IS NULL`;
      const useLike = like && typeof value === 'string' && value.includes('%');
      params.push(column.bind(value, { like: useLike }));
      return `${quote(spec.name)} ${useLike ? 'LIKE' : '='} ?`;
    });
    terms.push(alternatives.length === 1 ? alternatives[0] : `(${alternatives.join(' OR ')})`);
  }
  if (present(args.older) || present(args.newer)) {
    const stamp = args.timeStamp ?? 'LastUpdate';
    const { spec } = resolve(table, stamp);
    if (spec.kind !== 'datetime') fail(`timeStamp ${show(stamp)} is not a time column`);
    if (present(args.older)) terms.push(bounded(table, spec.name, args.older, '<', params));
    if (present(args.newer)) terms.push(bounded(table, spec.name, args.newer, '>=', params));
  }
  for (const [name, value] of Object.entries(plainObject('greater', args.greater))) terms.push(bounded(table, name, value, '>=', params));
  for (const [name, value] of Object.entries(plainObject('smaller', args.smaller))) terms.push(bounded(table, name, value, '<', params));
  return { sql: terms.length ? `WHERE ${terms.join(' AND ')}` : '', params };
}

/** ORDER BY from "Column[:ASC|DESC]" or a list of them. */
export function orderClause(table: TableName | undefined, orderAttribute: unknown): string {
  if (orderAttribute === undefined || orderAttribute === null || orderAttribute === '') return '';
  const items = Array.isArray(orderAttribute) ? orderAttribute : [orderAttribute];
  if (items.length === 0) return '';
  const parts = items.map((item) => {
    if (typeof item !== 'string') fail(`orderAttribute must be "Column:ASC|DESC", got ${typeof item}`);
    const [name, direction = 'ASC', ...rest] = item.split(':');
    const dir = direction.toUpperCase();
    if (rest.length || (dir !== 'ASC' && dir !== 'DESC')) fail(`orderAttribute ${show(item)} must be "Column:ASC|DESC"`);
    return `${quote(resolve(table, name).spec.name)} ${dir}`;
  });
  return `ORDER BY ${parts.join(', ')}`;
}

/** LIMIT/OFFSET; `false`, 0 or absent mean no limit, as in DIRAC. */
export function limitClause(limit: unknown, offset: unknown, params: unknown[]): string {
  const hasLimit = present(limit) && limit !== false && limit !== 0;
  const hasOffset = present(offset) && offset !== false && offset !== 0;
  if (!hasLimit && !hasOffset) return '';
  // Both dialects need a LIMIT before an OFFSET; this is the largest both accept.
  params.push(hasLimit ? count('limit', limit) : Number.MAX_SAFE_INTEGER);
  if (!hasOffset) return 'LIMIT ?';
  params.push(count('offset', offset));
  return 'LIMIT ? OFFSET ?';
}

/** The whole of DIRAC's buildCondition: WHERE, ORDER BY and LIMIT, with every value bound. */
export function buildCondition(table: TableName | undefined, args: ConditionArgs): Condition {
  const where = whereClause(table, args);
  const params = [...where.params];
  const sql = [where.sql, orderClause(table, args.orderAttribute), limitClause(args.limit, args.offset, params)]
    .filter(Boolean)
    .join(' ');
  return { sql, params };
}
