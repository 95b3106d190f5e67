import { UINT32_MAX } from './heartbeat';

/**
 * The three tables exactly as the seed's `tablesDesc` describes them, plus a
 * parsed form of each column type. The parsed form is what the facade uses to
 * check identifiers (only these column names ever reach SQL) and to validate
 * values before binding them. Pure data, no I/O.
 */

export const TABLES_DESC = {
  vm_Images: {
    Fields: {
      VMImageID: 'BIGINT UNSIGNED AUTO_INCREMENT NOT NULL',
      Name: 'VARCHAR(255) NOT NULL',
      Status: 'VARCHAR(16) NOT NULL',
      LastUpdate: 'DATETIME',
      ErrorMessage: 'VARCHAR(255) NOT NULL DEFAULT ""',
    },
    PrimaryKey: 'VMImageID',
  },
  vm_Instances: {
    Fields: {
      InstanceID: 'BIGINT UNSIGNED AUTO_INCREMENT NOT NULL',
      RunningPod: 'VARCHAR(255) NOT NULL',
      Name: 'VARCHAR(255) NOT NULL',
      Endpoint: 'VARCHAR(255) NOT NULL',
      UniqueID: 'VARCHAR(255) NOT NULL DEFAULT ""',
      VMImageID: 'INTEGER UNSIGNED NOT NULL',
      Status: 'VARCHAR(32) NOT NULL',
      LastUpdate: 'DATETIME',
      PublicIP: 'VARCHAR(32) NOT NULL DEFAULT ""',
      PrivateIP: 'VARCHAR(32) NOT NULL DEFAULT ""',
      ErrorMessage: 'VARCHAR(255) NOT NULL DEFAULT ""',
      MaxAllowedPrice: 'FLOAT DEFAULT NULL',
      Uptime: 'INTEGER UNSIGNED DEFAULT 0',
      Load: 'FLOAT DEFAULT 0',
      Jobs: 'INTEGER UNSIGNED NOT NULL DEFAULT 0',
    },
    PrimaryKey: 'InstanceID',
    Indexes: { Status: ['Status'] },
  },
  vm_History: {
    Fields: {
      InstanceID: 'INTEGER UNSIGNED NOT NULL',
      Status: 'VARCHAR(32) NOT NULL',
      Load: 'FLOAT NOT NULL',
      Jobs: 'INTEGER UNSIGNED NOT NULL DEFAULT 0',
      TransferredFiles: 'INTEGER UNSIGNED NOT NULL DEFAULT 0',
      TransferredBytes: 'BIGINT UNSIGNED NOT NULL DEFAULT 0',
      Update: 'DATETIME',
    },
    Indexes: { InstanceID: ['InstanceID'] },
  },
} as const;

export type TableName = keyof typeof TABLES_DESC;
export const TABLE_NAMES = Object.keys(TABLES_DESC) as TableName[];

export type ColumnKind = 'integer' | 'float' | 'varchar' | 'datetime';

export interface ColumnSpec {
  name: string;
  kind: ColumnKind;
  /** Largest value an integer column holds (unsigned INTEGER or BIGINT, capped at what a JS number holds exactly). */
  max?: number;
  /** Character limit of a VARCHAR column. */
  length?: number;
  nullable: boolean;
  autoIncrement: boolean;
}


function parseColumn(name: string, sql: string): ColumnSpec {
  const varchar = /^VARCHAR\((\d+)\)/.exec(sql);
  const nullable = !/NOT NULL/.test(sql);
  const autoIncrement = /AUTO_INCREMENT/.test(sql);
  if (varchar) return { name, kind: 'varchar', length: Number(varchar[1]), nullable, autoIncrement };
  if (sql.startsWith('BIGINT')) return { name, kind: 'integer', max: Number.MAX_SAFE_INTEGER, nullable, autoIncrement };
  if (sql.startsWith('INTEGER')) return { name, kind: 'integer', max: UINT32_MAX, nullable, autoIncrement };
  if (sql.startsWith('FLOAT')) return { name, kind: 'float', nullable, autoIncrement };
  if (sql.startsWith('DATETIME')) return { name, kind: 'datetime', nullable, autoIncrement };
  throw new Error(`Unsupported column type for ${name}: ${sql}`);
}

export const COLUMNS: Record<TableName, ReadonlyMap<string, ColumnSpec>> = Object.fromEntries(
  TABLE_NAMES.map((table) => [
    table,
    new Map(Object.entries(TABLES_DESC[table].Fields).map(([name, sql]) => [name, parseColumn(name, sql as string)])),
  ]),
) as unknown as Record<TableName, ReadonlyMap<string, ColumnSpec>>;

export function isTableName(name: unknown): name is TableName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(TABLES_DESC, name);
}

export function columnOf(table: TableName, name: unknown): ColumnSpec | undefined {
  return typeof name === 'string' ? COLUMNS[table].get(name) : undefined;
}

export function columnNames(table: TableName): string[] {
  return [...COLUMNS[table].keys()];
}
