import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectOf } from './dialect';

/**
 * The elastic fleet's own records, beside the seed's tables (whose shape stays the seed's):
 * - `vm_InstanceHalts`: why a VM halted itself (its stop policy found it idle), one row per instance.
 *   The Halted history row keeps the load it judged; the reason and its uptime live here.
 * - the Director's last demand reading and target per endpoint, on `vm_EndpointControl`.
 */
export class ElasticFleet1765100000000 implements MigrationInterface {
  name = 'ElasticFleet1765100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = dialectOf(queryRunner) === 'mysql';
    const unsigned = mysql ? ' UNSIGNED' : '';
    const tableOptions = mysql ? ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin' : '';
    await queryRunner.query(
      `CREATE TABLE \`vm_InstanceHalts\` (
  \`InstanceID\` BIGINT${unsigned} NOT NULL,
  \`Reason\` VARCHAR(32) NOT NULL DEFAULT '',
  \`Detail\` VARCHAR(255) NOT NULL DEFAULT '',
  \`Uptime\` INTEGER${unsigned} NOT NULL DEFAULT 0,
  \`At\` DATETIME,
  PRIMARY KEY (\`InstanceID\`)
)${tableOptions}`,
    );
    await queryRunner.query('CREATE INDEX `vm_InstanceHalts_Reason_At` ON `vm_InstanceHalts` (`Reason`, `At`)');
    // SQLite adds one column per statement.
    for (const column of [`\`Demand\` INTEGER${unsigned}`, `\`Target\` INTEGER${unsigned}`, "`DemandMessage` VARCHAR(255) NOT NULL DEFAULT ''", '`DemandAt` DATETIME']) {
      await queryRunner.query(`ALTER TABLE \`vm_EndpointControl\` ADD COLUMN ${column}`);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const column of ['DemandAt', 'DemandMessage', 'Target', 'Demand']) await queryRunner.query(`ALTER TABLE \`vm_EndpointControl\` DROP COLUMN \`${column}\``);
    await queryRunner.query('DROP TABLE `vm_InstanceHalts`');
  }
}
