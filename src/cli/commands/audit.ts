import { type Command, InvalidArgumentError } from 'commander';
import { instanceID, positiveInteger } from '../args';
import { apiClient, withJson } from '../context';
import { json, table, write } from '../format';
import { AUDIT_ACTIONS, type AuditEntry, MAX_AUDIT_PAGE } from '../../db/audit-store';

// The API answers with the store's own shapes; the store module is light (no database driver).
const ACTIONS: readonly string[] = AUDIT_ACTIONS;

function action(raw: string): string {
  if (!ACTIONS.includes(raw)) throw new InvalidArgumentError(`unknown action "${raw}" (one of ${ACTIONS.join(', ')}).`);
  return raw;
}

function operator(raw: string): string {
  if (!raw.trim()) throw new InvalidArgumentError('an empty name matches nothing.');
  return raw;
}

function since(raw: string): string {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(raw)) {
    throw new InvalidArgumentError(`"${raw}" is not a day (YYYY-MM-DD, UTC) or a time with its zone (2026-05-01T12:00:00Z).`);
  }
  return raw;
}

function pageSize(raw: string): number {
  const n = positiveInteger(raw);
  if (n > MAX_AUDIT_PAGE) throw new InvalidArgumentError(`"${raw}" is more than ${MAX_AUDIT_PAGE}.`);
  return n;
}

/** A failure as the caller got it: status, code and message. */
function outcomeOf(e: AuditEntry): string {
  return e.outcome === 'succeeded' ? 'ok' : `failed ${e.httpStatus}${e.error ? ` ${e.error}` : ''}`;
}

export function registerAuditCommand(program: Command): void {
  withJson(
    program
      .command('audit')
      .description('the audit trail: who stopped, paused, set or triggered what, when, and how it ended; newest first')
      .option('--instance <instanceID>', 'only actions on this instance', instanceID)
      .option('--operator <name>', "only this operator (the token's name)", operator)
      .option('--action <action>', `only this action (${ACTIONS.join(', ')})`, action)
      .option('--since <time>', 'only from this day (YYYY-MM-DD, UTC) or time (2026-05-01T12:00:00Z) on', since)
      .option('--before <id>', 'only entries older than this id (the next page)', positiveInteger)
      .option('--limit <n>', `at most n entries (1 to ${MAX_AUDIT_PAGE}; default 100)`, pageSize),
  ).action(async (options: { instance?: number; operator?: string; action?: string; since?: string; before?: number; limit?: number; json?: boolean }, command: Command) => {
    const reply = await apiClient(command).get<{ entries: AuditEntry[]; next: number | null }>('/api/v1/audit', {
      instanceID: options.instance,
      operator: options.operator,
      action: options.action,
      since: options.since,
      before: options.before,
      limit: options.limit,
    });
    if (options.json) return write(json(reply));
    if (!reply.entries.length) return write('no operator actions recorded\n');
    write(
      table(
        ['ID', 'When (UTC)', 'Operator', 'Action', 'Target', 'Outcome', 'Detail'],
        reply.entries.map((e) => [e.id, e.at.slice(0, 19).replace('T', ' '), e.operator, e.action, e.target, outcomeOf(e), e.outcome === 'succeeded' ? e.detail || undefined : e.message || undefined]),
      ),
    );
    if (reply.next !== null) write(`more: --before ${reply.next}\n`);
  });
}
