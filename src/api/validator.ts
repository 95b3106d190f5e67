import { isIPv4, isIPv6 } from 'node:net';
import Ajv, { type Options } from 'ajv';
import type { FastifyInstance } from 'fastify';

// Fastify's defaults coerce every part and silently drop unknown properties. For JSON bodies that
// would turn `"jobs": true` into 1 and `null` into 0, and would accept a heartbeat with a misspelled
// field; bodies are therefore validated as sent. Path and query values are always strings, so
// those are coerced ("42" -> 42), and "NaN" or "1.5" still fail an integer schema.
// The formats the schemas use, checked as Node checks addresses. verbose: an error carries its
// schema, whose description makes the message for anyOf and pattern (formatValidation).
const common: Options = { useDefaults: true, removeAdditional: false, allErrors: false, verbose: true, formats: { ipv4: isIPv4, ipv6: isIPv6, date: isCalendarDay, 'date-time': isDateTime } };
const strict = new Ajv({ ...common, coerceTypes: false });
const coercing = new Ajv({ ...common, coerceTypes: 'array' });

/** YYYY-MM-DD naming a day that exists (not 2026-02-30). */
export function isCalendarDay(text: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false;
  const ms = Date.parse(`${text}T00:00:00Z`);
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 10) === text;
}

/** An RFC 3339 time with its zone, on a day that exists (2026-05-01T12:00:00Z, 2026-05-01T14:00:00.5+02:00). */
export function isDateTime(text: string): boolean {
  const match = /^(\d{4}-\d{2}-\d{2})[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$/.exec(text);
  return match !== null && isCalendarDay(match[1]) && !Number.isNaN(Date.parse(text));
}

export function installValidators(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema));
}
