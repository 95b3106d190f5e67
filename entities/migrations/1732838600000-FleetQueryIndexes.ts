import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectOf } from './dialect';
import { PERFORMANCE_INDEXES } from './performance-indexes';

const MINE = 'FleetQueryIndexes1732838600000';

/**
 * Indexes for the operator's queries on a fleet of a million instances (bench/queries.ts):
 * filtered pages and their totals read an index instead of the table, and the running-instances
 * history reads one index instead of every history row.
 */
export class FleetQueryIndexes1732838600000 implements MigrationInterface {
  name = MINE;

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const { table, name, columns } of PERFORMANCE_INDEXES.filter((i) => i.migration === MINE)) {
      // Names and columns come from the constant list above, never from input.
      await queryRunner.query(`CREATE INDEX \`${name}\` ON \`${table}\` (${columns.map((c) => `\`${c}\``).join(', ')})`);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const mysql = dialectOf(queryRunner) === 'mysql';
    for (const { table, name } of PERFORMANCE_INDEXES.filter((i) => i.migration === MINE).reverse()) {
      await queryRunner.query(mysql ? `DROP INDEX \`${name}\` ON \`${table}\`` : `DROP INDEX \`${name}\``);
    }
  }
}
