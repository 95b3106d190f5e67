import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectOf } from './dialect';

/**
 * The fleet-safety state that must survive restarts of every vmdb process: per-endpoint pause and
 * backoff, per-instance manual control, and fleet-wide switches and marks (mode, component pulses,
 * guard trips). Kept out of vm_Instances / vm_History, whose shape is the seed's.
 */
export class FleetSafety1764460800000 implements MigrationInterface {
  name = 'FleetSafety1764460800000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = dialectOf(queryRunner) === 'mysql';
    const unsigned = mysql ? ' UNSIGNED' : '';
    const tableOptions = mysql ? ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin' : '';
    await queryRunner.query(
      `CREATE TABLE \`vm_EndpointControl\` (
  \`Endpoint\` VARCHAR(255) NOT NULL,
  \`Paused\` INTEGER${unsigned} NOT NULL DEFAULT 0,
  \`PauseReason\` VARCHAR(255) NOT NULL DEFAULT '',
  \`Failures\` INTEGER${unsigned} NOT NULL DEFAULT 0,
  \`LastReason\` VARCHAR(32) NOT NULL DEFAULT '',
  \`LastMessage\` VARCHAR(255) NOT NULL DEFAULT '',
  \`LastFailure\` DATETIME,
  \`BackoffUntil\` DATETIME,
  \`LastUpdate\` DATETIME,
  PRIMARY KEY (\`Endpoint\`)
)${tableOptions}`,
    );
    await queryRunner.query(
      `CREATE TABLE \`vm_InstanceControl\` (
  \`InstanceID\` BIGINT${unsigned} NOT NULL,
  \`Reason\` VARCHAR(255) NOT NULL DEFAULT '',
  \`Since\` DATETIME,
  PRIMARY KEY (\`InstanceID\`)
)${tableOptions}`,
    );
    await queryRunner.query(
      `CREATE TABLE \`vm_FleetControl\` (
  \`Name\` VARCHAR(64) NOT NULL,
  \`Value\` VARCHAR(255) NOT NULL DEFAULT '',
  \`LastUpdate\` DATETIME,
  PRIMARY KEY (\`Name\`)
)${tableOptions}`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of ['vm_FleetControl', 'vm_InstanceControl', 'vm_EndpointControl']) await queryRunner.query(`DROP TABLE \`${table}\``);
  }
}
