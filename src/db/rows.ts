import type { ColumnSpec, TableName } from '../../entities/tables';
import { COLUMNS } from '../../entities/tables';
import type { Row } from './database';
import { fromSqlTime } from './time';

/** One value as callers see it: numbers as numbers, DATETIMEs as UTC Dates, whatever the driver returned. */
export function toValue(spec: ColumnSpec | undefined, value: unknown): unknown {
  if (value === null || value === undefined || !spec) return value ?? null;
  switch (spec.kind) {
    case 'integer':
    case 'float':
      return Number(value);
    case 'datetime':
      return fromSqlTime(value);
    default:
      return typeof value === 'string' ? value : String(value);
  }
}

/** A row of `table` with every column converted by its declared type. */
export function toRecord(table: TableName, row: Row): Record<string, unknown> {
  const columns = COLUMNS[table];
  return Object.fromEntries(Object.entries(row).map(([name, value]) => [name, toValue(columns.get(name), value)]));
}
