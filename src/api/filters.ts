import { type TableName, columnOf } from '../../entities/tables';

type Query = Record<string, unknown>;

const ALIASES: Record<string, TableName> = { inst: 'vm_Instances', img: 'vm_Images' };
const NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** True when `name` (`Load`, `inst.Load`) is a FLOAT column: the facade wants numbers there, a query string has text. */
function isFloatColumn(name: string, tables: readonly TableName[]): boolean {
  const [alias, column] = name.includes('.') ? name.split('.', 2) : [undefined, name];
  const candidates = alias ? (Object.hasOwn(ALIASES, alias) ? [ALIASES[alias]] : []) : tables;
  const spec = candidates.map((table) => columnOf(table, column)).find(Boolean);
  return spec?.kind === 'float';
}

/**
 * The selDict of the query's filters: every key but `reserved`, with
 * comma-separated (or repeated) values as a list the facade ORs. Values are
 * left as text for the facade to check, except numbers for FLOAT columns.
 * Object.fromEntries keeps a key such as `__proto__` an ordinary key.
 */
export function filtersOf(query: Query, reserved: readonly string[], tables: readonly TableName[] = ['vm_Instances']): Record<string, unknown[]> {
  return Object.fromEntries(
    Object.entries(query)
      .filter(([key]) => !reserved.includes(key))
      .map(([key, raw]) => {
        const values = [raw].flat().flatMap((value) => String(value).split(','));
        return [key, isFloatColumn(key, tables) ? values.map((v) => (NUMBER.test(v) ? Number(v) : v)) : values];
      }),
  );
}

/** `F:ASC,G:DESC` as the facade's sortList; a missing direction is ASC, unknown fields are left for the facade to ignore. */
export function sortListOf(sort: string | undefined): [string, string][] {
  if (!sort) return [];
  return sort
    .split(',')
    .filter(Boolean)
    .map((item) => {
      const [field, direction = 'ASC'] = item.split(':');
      return [field, direction];
    });
}

/** `Load,Jobs` as a list (empty entries dropped). */
export function listOf(value: string | undefined): string[] {
  return (value ?? '').split(',').filter(Boolean);
}
