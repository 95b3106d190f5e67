import { INSTANCE_STATES } from '../../entities/states';
import { type ColumnSpec, type TableName, columnOf } from '../../entities/tables';
import { quote, whereClause, limitClause } from './conditions';
import type { Executor } from './database';
import { ensureImage, forceError } from './lifecycle';
import { type Result, S_ERROR, S_OK } from './result';
import { toRecord, toValue } from './rows';
import { fail, plainObject, show } from './validate';

/** Read-only queries of the facade (and the status reads that may flag an invalid status). */

async function oneInstanceValue(ex: Executor, column: string, by: string, value: unknown): Promise<Result<unknown>> {
  const rows = await ex.select(`SELECT ${quote(column)} FROM \`vm_Instances\` WHERE ${quote(by)} = ?`, [value]);
  if (rows.length === 0) return S_ERROR(`Unknown ${by} = ${String(value)}`, undefined, 'not_found');
  if (rows.length > 1) return S_ERROR(`${by} is not unique: ${String(value)}`);
  return S_OK(toValue(columnOf('vm_Instances', column), rows[0][column]));
}

export const getInstanceID = (ex: Executor, uniqueID: string) =>
  oneInstanceValue(ex, 'InstanceID', 'UniqueID', uniqueID) as Promise<Result<number>>;
export const getUniqueID = (ex: Executor, instanceID: number) =>
  oneInstanceValue(ex, 'UniqueID', 'InstanceID', instanceID) as Promise<Result<string>>;
export const getEndpoint = (ex: Executor, uniqueID: string) =>
  oneInstanceValue(ex, 'Endpoint', 'UniqueID', uniqueID) as Promise<Result<string>>;
export const getInstanceParameter = (ex: Executor, column: string, instanceID: number) =>
  oneInstanceValue(ex, column, 'InstanceID', instanceID);

export async function getUniqueIDByName(ex: Executor, name: string): Promise<Result<string>> {
  const rows = await ex.select('SELECT `UniqueID` FROM `vm_Instances` WHERE `Name` = ?', [name]);
  if (rows.length === 0) return S_ERROR('Instance not found');
  if (rows.length > 1) return S_ERROR(`Instance name is not unique: ${name}`);
  return S_OK(String(rows[0].UniqueID));
}

/** Status of an instance; Error returns its message, an invalid status turns the row into Error. */
export async function getInstanceStatus(ex: Executor, instanceID: number): Promise<Result<string>> {
  const rows = await ex.select('SELECT `Status`, `ErrorMessage` FROM `vm_Instances` WHERE `InstanceID` = ?', [instanceID]);
  if (rows.length === 0) return S_ERROR(`Unknown InstanceID = ${instanceID}`, undefined, 'not_found');
  const status = String(rows[0].Status);
  if (status === 'Error') return S_ERROR(String(rows[0].ErrorMessage || `Instance ${instanceID} is in Error`));
  if (!(INSTANCE_STATES as readonly string[]).includes(status)) {
    const message = `Invalid Status: ${status}`;
    await forceError(ex, 'Instance', instanceID, message, undefined, status);
    return S_ERROR(message);
  }
  return S_OK(status);
}

export async function checkImageStatus(ex: Executor, imageName: string): Promise<Result<string>> {
  const image = await ensureImage(ex, imageName);
  return image.OK ? S_OK(image.Value.status) : image;
}

export async function getAllInfoForUniqueID(
  ex: Executor,
  uniqueID: string,
): Promise<Result<{ Image: Record<string, unknown>; Instance: Record<string, unknown> }>> {
  const instances = await ex.select('SELECT * FROM `vm_Instances` WHERE `UniqueID` = ?', [uniqueID]);
  if (instances.length === 0) return S_ERROR(`Unknown UniqueID = ${uniqueID}`, undefined, 'not_found');
  if (instances.length > 1) return S_ERROR(`UniqueID is not unique: ${uniqueID}`);
  const [image] = await ex.select('SELECT * FROM `vm_Images` WHERE `VMImageID` = ?', [instances[0].VMImageID]);
  return S_OK({ Image: image ? toRecord('vm_Images', image) : {}, Instance: toRecord('vm_Instances', instances[0]) });
}

export async function getInstancesByStatus(ex: Executor, status: string): Promise<Result<Record<string, string[]>>> {
  const rows = await ex.select(
    'SELECT img.`Name` AS imageName, inst.`UniqueID` AS uniqueID FROM `vm_Instances` inst JOIN `vm_Images` img ON img.`VMImageID` = inst.`VMImageID` WHERE inst.`Status` = ? ORDER BY inst.`InstanceID`',
    [status],
  );
  const byImage: Record<string, string[]> = {};
  for (const row of rows) (byImage[String(row.imageName)] ??= []).push(String(row.uniqueID));
  return S_OK(byImage);
}

/** The columns getInstancesContent returns, as `alias.Column`. */
export const CONTENT_FIELDS = [
  'inst.InstanceID',
  'inst.Name',
  'inst.UniqueID',
  'inst.Endpoint',
  'inst.RunningPod',
  'inst.VMImageID',
  'inst.Status',
  'inst.PublicIP',
  'inst.PrivateIP',
  'inst.ErrorMessage',
  'inst.LastUpdate',
  'inst.Load',
  'inst.Uptime',
  'inst.Jobs',
  'img.Name',
  'img.Status',
] as const;

const ALIAS_TABLE: Record<string, TableName> = { inst: 'vm_Instances', img: 'vm_Images' };

/** `inst.Status`, `img.Name`, or a bare column (instance first, then image); undefined when unknown. */
function contentField(name: string): { sql: string; table: TableName; spec: ColumnSpec } | undefined {
  const [alias, column] = name.includes('.') ? name.split('.', 2) : [undefined, name];
  for (const candidate of alias ? [alias] : ['inst', 'img']) {
    const table = Object.hasOwn(ALIAS_TABLE, candidate) ? ALIAS_TABLE[candidate] : undefined;
    const spec = table && columnOf(table, column);
    if (spec) return { sql: `${candidate}.${quote(spec.name)}`, table, spec };
  }
  return undefined;
}

export async function getInstancesContent(
  ex: Executor,
  selDict: unknown,
  sortList: unknown,
  start: unknown,
  limit: unknown,
): Promise<Result<{ ParameterNames: string[]; Records: unknown[][]; TotalRecords: number }>> {
  const terms: string[] = [];
  const params: unknown[] = [];
  // Unknown fields are ignored, as in the original; known ones are bound like any value.
  for (const [name, raw] of Object.entries(plainObject('selDict', selDict))) {
    const field = contentField(name);
    if (!field) continue;
    const where = whereClause(field.table, { condDict: { [field.spec.name]: raw } });
    terms.push(where.sql.replace(/^WHERE /, '').replaceAll(quote(field.spec.name), field.sql));
    params.push(...where.params);
  }
  const order: string[] = [];
  let lastDirection = 'ASC';
  for (const item of Array.isArray(sortList) ? sortList : []) {
    const [name, direction] = Array.isArray(item) ? item : [item, 'ASC'];
    const field = typeof name === 'string' ? contentField(name) : undefined;
    const dir = typeof direction === 'string' ? direction.toUpperCase() : '';
    if (field && (dir === 'ASC' || dir === 'DESC')) {
      order.push(`${field.sql} ${dir}`);
      lastDirection = dir;
    }
  }
  // Ties go by InstanceID in the direction of the last sort key: an index on (filter, sort key)
  // then serves the page in order, where a mixed direction would sort every match first.
  order.push(`inst.\`InstanceID\` ${lastDirection}`);
  const from = `FROM \`vm_Instances\` inst JOIN \`vm_Images\` img ON img.\`VMImageID\` = inst.\`VMImageID\`${terms.length ? ` WHERE ${terms.join(' AND ')}` : ''}`;
  const [{ total }] = await ex.select(`SELECT COUNT(*) AS total ${from}`, params);
  const columns = CONTENT_FIELDS.map((name) => contentField(name)!);
  const pageParams = [...params];
  const page = limitClause(limit, start, pageParams);
  const rows = await ex.select(
    `SELECT ${columns.map((c, i) => `${c.sql} AS c${i}`).join(', ')} ${from} ORDER BY ${order.join(', ')} ${page}`,
    pageParams,
  );
  return S_OK({
    ParameterNames: [...CONTENT_FIELDS],
    Records: rows.map((row) => columns.map((c, i) => toValue(c.spec, row[`c${i}`]))),
    TotalRecords: Number(total),
  });
}

export async function getHistoryForInstanceID(
  ex: Executor,
  instanceID: number,
): Promise<Result<{ ParameterNames: string[]; Records: unknown[][] }>> {
  const names = ['Status', 'Load', 'Update', 'Jobs', 'TransferredFiles', 'TransferredBytes'];
  const rows = await ex.select(
    `SELECT ${names.map(quote).join(', ')} FROM \`vm_History\` WHERE \`InstanceID\` = ? ORDER BY \`Update\` ASC`,
    [instanceID],
  );
  return S_OK({
    ParameterNames: names,
    Records: rows.map((row) => names.map((name) => toValue(columnOf('vm_History', name), row[name]))),
  });
}

export async function getInstanceCounters(ex: Executor, groupField: string, selDict: unknown): Promise<Result<Record<string, number>>> {
  const group = columnOf('vm_Instances', groupField) ?? fail(`${typeof groupField === 'string' ? groupField : show(groupField)} is not a valid field`);
  const where = whereClause('vm_Instances', { condDict: selDict });
  const rows = await ex.select(
    `SELECT ${quote(group.name)} AS value, COUNT(*) AS n FROM \`vm_Instances\` ${where.sql} GROUP BY ${quote(group.name)}`,
    where.params,
  );
  return S_OK(Object.fromEntries(rows.map((row) => [String(toValue(group, row.value)), Number(row.n)])));
}
