export { VirtualMachineDB, type OpenOptions } from './db/vmdb';
export { type Result, type Ok, type Failure, S_OK, S_ERROR } from './db/result';
export { parseDatabaseUrl } from './db/database';
export * as states from '../entities/states';
export { TABLES_DESC } from '../entities/tables';
