import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectOf } from './dialect';

/**
 * What the life cycle keeps beside an instance's seed row (whose shape stays the seed's): a version
 * that orders the workflow's reads of the record, the agent's last heartbeat number (boot id and
 * sequence) so a retried heartbeat writes nothing, the planned shutdown the heartbeat answer carries,
 * and an endpoint stop that keeps failing ("halt pending"). Existing instances get their row here;
 * new ones get it with their insert, so a heartbeat never locks a gap.
 */
export class InstanceLife1765000000000 implements MigrationInterface {
  name = 'InstanceLife1765000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = dialectOf(queryRunner) === 'mysql';
    const unsigned = mysql ? ' UNSIGNED' : '';
    const tableOptions = mysql ? ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin' : '';
    await queryRunner.query(
      `CREATE TABLE \`vm_InstanceLife\` (
  \`InstanceID\` BIGINT${unsigned} NOT NULL,
  \`Version\` BIGINT${unsigned} NOT NULL DEFAULT 0,
  \`BootID\` VARCHAR(64) NOT NULL DEFAULT '',
  \`Seq\` BIGINT${unsigned} NOT NULL DEFAULT 0,
  \`ShutdownAt\` DATETIME,
  \`HaltPendingSince\` DATETIME,
  \`HaltPendingReason\` VARCHAR(255) NOT NULL DEFAULT '',
  PRIMARY KEY (\`InstanceID\`)
)${tableOptions}`,
    );
    await queryRunner.query('INSERT INTO `vm_InstanceLife` (`InstanceID`) SELECT `InstanceID` FROM `vm_Instances`');
    await queryRunner.query('CREATE INDEX `vm_InstanceLife_HaltPendingSince` ON `vm_InstanceLife` (`HaltPendingSince`)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE `vm_InstanceLife`');
  }
}
