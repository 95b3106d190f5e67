import { quote, whereClause } from './conditions';
import type { Dialect, Executor } from './database';
import { type Result, S_ERROR, S_OK } from './result';
import { fromSqlTime, secondsAgoSql } from './time';
import { fail, show } from './validate';

/** Time-bucketed views of vm_History: fleet figures and running-instance counts. */

export const HISTORY_DATA_FIELDS = ['Load', 'Jobs', 'TransferredFiles', 'TransferredBytes'] as const;
const CUMULATIVE = new Set(['Jobs', 'TransferredFiles', 'TransferredBytes']);
export const MIN_RUNNING_BUCKET = 300;

/** Seconds since the epoch of a DATETIME column, floored to a bucket; the bucket size is bound twice. */
function bucketExpression(dialect: Dialect, column: string): string {
  const epoch =
    dialect === 'mysql'
      ? `TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', ${column})`
      : `CAST(strftime('%s', ${column}) AS INTEGER)`;
  // better-sqlite3 binds JS numbers as REAL: cast so SQLite divides integers.
  return dialect === 'mysql' ? `((${epoch} DIV ?) * ?)` : `((${epoch} / CAST(? AS INTEGER)) * CAST(? AS INTEGER))`;
}

/** One instance's samples in one bucket, summed (means) or at their maximum (cumulative figures) by SQL. */
interface Group {
  instance: number;
  bucket: number;
  count: number;
  values: Record<string, number>;
}

/** The most buckets × fields one answer may hold: larger asks are refused, never loaded. */
export const MAX_HISTORY_VALUES = 100_000;

/**
 * Load: mean of the samples in a bucket. Cumulative figures: each instance's
 * maximum in the bucket, carried forward while it stays silent, summed over
 * instances, reported as the increase since the first bucket.
 */
export function aggregateBuckets(groups: Group[], fields: readonly string[]): unknown[][] {
  const buckets = [...new Set(groups.map((g) => g.bucket))].sort((a, b) => a - b);
  const byBucket = new Map<number, Group[]>(buckets.map((b) => [b, []]));
  for (const group of groups) byBucket.get(group.bucket)!.push(group);
  const latest = new Map<string, Map<number, number>>(fields.map((f) => [f, new Map()]));
  const first: Record<string, number> = {};
  return buckets.map((bucket, index) => {
    const inBucket = byBucket.get(bucket)!;
    const samples = inBucket.reduce((sum, g) => sum + g.count, 0);
    const record: unknown[] = [bucket];
    for (const field of fields) {
      if (!CUMULATIVE.has(field)) {
        record.push(inBucket.reduce((sum, g) => sum + g.values[field], 0) / samples);
        continue;
      }
      const perInstance = latest.get(field)!;
      for (const g of inBucket) perInstance.set(g.instance, g.values[field]);
      const total = [...perInstance.values()].reduce((a, b) => a + b, 0);
      if (index === 0) first[field] = total;
      record.push(Math.max(0, total - first[field]));
    }
    return record;
  });
}

export async function getHistoryValues(
  ex: Executor,
  averageBucket: number,
  selDict: unknown,
  fields2Get: unknown,
  timespan: number,
): Promise<Result<{ ParameterNames: string[]; Records: unknown[][] }>> {
  // Falsy or empty means all fields, as in the original.
  const given = Array.isArray(fields2Get) ? fields2Get : fields2Get ? [fields2Get] : [];
  const fields = given.length ? given : [...HISTORY_DATA_FIELDS];
  for (const field of fields) {
    if (!(HISTORY_DATA_FIELDS as readonly unknown[]).includes(field)) fail(`${show(field)} is not a valid data field`);
  }
  const where = whereClause('vm_Instances', { condDict: selDict });
  const terms = [where.sql.replace(/^WHERE /, '').replace(/`(\w+)`/g, 'inst.`$1`')].filter(Boolean);
  const params: unknown[] = [...where.params];
  if (timespan > 0) {
    terms.push('h.`Update` >= ?');
    params.push(secondsAgoSql(timespan));
  }
  const from = `FROM \`vm_History\` h JOIN \`vm_Instances\` inst ON inst.\`InstanceID\` = h.\`InstanceID\`
     ${terms.length ? `WHERE ${terms.join(' AND ')} AND` : 'WHERE'} h.\`Update\` IS NOT NULL`;
  // The answer's size is known before anything is loaded: its buckets times its fields.
  const [range] = await ex.select(`SELECT MIN(h.\`Update\`) AS first, MAX(h.\`Update\`) AS last ${from}`, params);
  const [firstAt, lastAt] = [fromSqlTime(range?.first), fromSqlTime(range?.last)];
  if (firstAt && lastAt) {
    const bucketOf = (at: Date) => Math.floor(at.getTime() / 1000 / averageBucket);
    const size = (bucketOf(lastAt) - bucketOf(firstAt) + 1) * fields.length;
    if (size > MAX_HISTORY_VALUES) {
      return S_ERROR(`Too many values asked for: ${size} (buckets of ${averageBucket} s times ${fields.length} fields) is over ${MAX_HISTORY_VALUES}; ask for larger buckets, a shorter timespan or fewer fields`);
    }
  }
  // Each field name was checked against HISTORY_DATA_FIELDS above, so it is safe in an alias too.
  const figures = fields.map((f) => (CUMULATIVE.has(f) ? `MAX(h.${quote(f)})` : `SUM(h.${quote(f)})`) + ` AS ${quote(f)}`);
  const rows = await ex.select(
    `SELECT h.\`InstanceID\` AS instance, ${bucketExpression(ex.dialect, 'h.`Update`')} AS bucket, COUNT(*) AS samples, ${figures.join(', ')}
     ${from}
     GROUP BY h.\`InstanceID\`, bucket`,
    [averageBucket, averageBucket, ...params],
  );
  const groups = rows.map((row) => ({
    instance: Number(row.instance),
    bucket: Number(row.bucket),
    count: Number(row.samples),
    values: Object.fromEntries(fields.map((f) => [f, Number(row[f])])),
  }));
  return S_OK({ ParameterNames: ['Update', ...fields], Records: aggregateBuckets(groups, fields) });
}

export type RunningGroup = 'Endpoint' | 'RunningPod' | 'Image' | null;

/** Distinct instances with a Running history row per bucket, optionally per endpoint, pod or image. */
export async function getRunningHistory(
  ex: Executor,
  timespan: number,
  bucketSize: number,
  group: RunningGroup,
): Promise<Result<unknown[][]>> {
  const size = Math.max(MIN_RUNNING_BUCKET, bucketSize);
  const bucket = bucketExpression(ex.dialect, 'h.`Update`');
  const groupColumn = group === 'Image' ? 'img.`Name`' : group ? `inst.${quote(group)}` : null;
  const joins = group
    ? ' JOIN `vm_Instances` inst ON inst.`InstanceID` = h.`InstanceID`' +
      (group === 'Image' ? ' JOIN `vm_Images` img ON img.`VMImageID` = inst.`VMImageID`' : '')
    : '';
  const params: unknown[] = [size, size, 'Running'];
  let timeFilter = '';
  if (timespan > 0) {
    timeFilter = ' AND h.`Update` >= ?';
    params.push(secondsAgoSql(timespan));
  }
  const rows = await ex.select(
    `SELECT ${bucket} AS bucket${groupColumn ? `, ${groupColumn} AS grp` : ''}, COUNT(DISTINCT h.\`InstanceID\`) AS n
     FROM \`vm_History\` h${joins}
     WHERE h.\`Status\` = ? AND h.\`Update\` IS NOT NULL${timeFilter}
     GROUP BY bucket${groupColumn ? ', grp' : ''} ORDER BY bucket${groupColumn ? ', grp' : ''}`,
    params,
  );
  return S_OK(rows.map((row) => (groupColumn ? [Number(row.bucket), String(row.grp), Number(row.n)] : [Number(row.bucket), Number(row.n)])));
}
