import type { QueryRunner } from 'typeorm';

export type Dialect = 'mysql' | 'sqlite';

/** Which SQL flavour a migration is running against. */
export function dialectOf(queryRunner: QueryRunner): Dialect {
  return queryRunner.connection.driver.options.type === 'mysql' ? 'mysql' : 'sqlite';
}
