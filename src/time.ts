/** DATETIME values travel as UTC 'YYYY-MM-DD HH:MM:SS' strings, the same on MySQL and SQLite. */

export function toSqlTime(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

export function nowSql(): string {
  return toSqlTime(new Date());
}

/** `seconds` before now, as a bound DATETIME value. */
export function secondsAgoSql(seconds: number): string {
  return toSqlTime(new Date(Date.now() - seconds * 1000));
}

export function fromSqlTime(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  const text = String(value);
  const date = new Date(text.includes('T') ? text : `${text.replace(' ', 'T')}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}
