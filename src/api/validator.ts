import Ajv, { type Options } from 'ajv';
import type { FastifyInstance } from 'fastify';

// Fastify's defaults coerce every part and silently drop unknown properties. For JSON bodies that
// would turn `"jobs": true` into 1 and `null` into 0, and would accept a heartbeat with a misspelled
// field; bodies are therefore validated as sent. Path and query values are always strings, so
// those are coerced ("42" -> 42), and "NaN" or "1.5" still fail an integer schema.
const common: Options = { useDefaults: true, removeAdditional: false, allErrors: false };
const strict = new Ajv({ ...common, coerceTypes: false });
const coercing = new Ajv({ ...common, coerceTypes: 'array' });

export function installValidators(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema));
}
