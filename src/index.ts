export { VirtualMachineDB, type OpenOptions } from './vmdb';
export { type Result, type Ok, type Failure, S_OK, S_ERROR } from './result';
export { parseDatabaseUrl } from './database';
export * as states from '../entities/states';
export { TABLES_DESC } from '../entities/tables';
