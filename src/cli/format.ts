/** Output for people (aligned tables, key/value lists) and for scripts (JSON). No dependencies. */

const ISO_DATE = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$/;

/** Control characters (a VM's error message, a name) are shown escaped, never sent to the terminal. */
export function clean(text: string, keepNewlines = false): string {
  return text.replace(keepNewlines ? /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g : /[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** One value as a table cell: empty and null as "-", UTC times without milliseconds. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value === 'string') {
    const date = ISO_DATE.exec(value);
    return date ? `${date[1]} ${date[2]}` : clean(value);
  }
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return clean(JSON.stringify(value));
}

const NUMERIC = /^-?\d+(\.\d+)?$/;

/** An aligned table: a header line, then one line per row; numeric columns are right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = rows.map((row) => headers.map((_, i) => cell(row[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const numeric = headers.map((_, i) => cells.some((r) => NUMERIC.test(r[i])) && cells.every((r) => NUMERIC.test(r[i]) || r[i] === '-'));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...cells.map((r) => line(r))].join('\n') + '\n';
}

/** `key  value` lines, keys aligned. */
export function keyValues(entries: readonly (readonly [string, unknown])[]): string {
  const width = Math.max(0, ...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${k.padEnd(width)}  ${cell(v)}`.trimEnd()).join('\n') + '\n';
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function write(text: string): void {
  process.stdout.write(text);
}

/** `{ ParameterNames, Records }` as a table, optionally with shorter column titles. */
export function recordsTable(reply: { ParameterNames: string[]; Records: unknown[][] }, titles: Record<string, string> = {}): string {
  return table(
    reply.ParameterNames.map((name) => titles[name] ?? name),
    reply.Records,
  );
}
