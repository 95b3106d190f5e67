import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectOf } from './dialect';

/**
 * The audit trail of operator actions (stops, manual control, endpoint pauses, the fleet mode,
 * Director triggers), each with who, when, what, on what, and how it ended. A table of its own:
 * the seed's tables keep their shape. The indexes serve the trail's filters, newest first by ID.
 */
export class AuditTrail1765200000000 implements MigrationInterface {
  name = 'AuditTrail1765200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = dialectOf(queryRunner) === 'mysql';
    const unsigned = mysql ? ' UNSIGNED' : '';
    const id = mysql ? '`ID` BIGINT UNSIGNED AUTO_INCREMENT NOT NULL' : '`ID` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL';
    const primaryKey = mysql ? ',\n  PRIMARY KEY (`ID`)' : '';
    const tableOptions = mysql ? ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin' : '';
    await queryRunner.query(
      `CREATE TABLE \`vm_AuditLog\` (
  ${id},
  \`At\` DATETIME NOT NULL,
  \`Operator\` VARCHAR(255) NOT NULL,
  \`Role\` VARCHAR(16) NOT NULL DEFAULT '',
  \`Action\` VARCHAR(64) NOT NULL,
  \`Target\` VARCHAR(255) NOT NULL DEFAULT '',
  \`InstanceID\` BIGINT${unsigned},
  \`Detail\` VARCHAR(255) NOT NULL DEFAULT '',
  \`Outcome\` VARCHAR(16) NOT NULL,
  \`HttpStatus\` INTEGER${unsigned} NOT NULL DEFAULT 0,
  \`ErrorCode\` VARCHAR(64) NOT NULL DEFAULT '',
  \`Message\` VARCHAR(255) NOT NULL DEFAULT ''${primaryKey}
)${tableOptions}`,
    );
    for (const [name, columns] of [
      ['vm_AuditLog_InstanceID_ID', '`InstanceID`, `ID`'],
      ['vm_AuditLog_Operator_ID', '`Operator`, `ID`'],
      ['vm_AuditLog_Action_ID', '`Action`, `ID`'],
      ['vm_AuditLog_At', '`At`'],
    ]) {
      await queryRunner.query(`CREATE INDEX \`${name}\` ON \`vm_AuditLog\` (${columns})`);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE `vm_AuditLog`');
  }
}
