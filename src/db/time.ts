/** DATETIME values travel as UTC 'YYYY-MM-DD HH:MM:SS' strings, the same on MySQL and SQLite. */

export function toSqlTime(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

export function nowSql(): string {
  return toSqlTime(new Date());
}

/** The earliest DATETIME MySQL and MariaDB hold; no row is older. */
export const EARLIEST_DATETIME = Date.UTC(1000, 0, 1);

/**
 * `seconds` before now, as a bound DATETIME value. A span reaching back beyond
 * the earliest DATETIME means "all of it": without the bound, a span of
 * thousands of years would make a date the database cannot compare, or none at all.
 */
export function secondsAgoSql(seconds: number): string {
  return toSqlTime(new Date(Math.max(Date.now() - seconds * 1000, EARLIEST_DATETIME)));
}

export function fromSqlTime(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  const text = String(value);
  const date = new Date(text.includes('T') ? text : `${text.replace(' ', 'T')}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}
