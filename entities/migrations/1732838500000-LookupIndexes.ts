import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectOf } from './dialect';

/**
 * Indexes for the lookups every heartbeat and every Director pass makes; the
 * seed's schema would scan whole tables for each of them.
 */
export class LookupIndexes1732838500000 implements MigrationInterface {
  name = 'LookupIndexes1732838500000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // Each heartbeat and state call resolves UniqueID -> InstanceID first.
    await queryRunner.query('CREATE INDEX `vm_Instances_UniqueID` ON `vm_Instances` (`UniqueID`)');
    // getUniqueIDByName looks instances up by Name.
    await queryRunner.query('CREATE INDEX `vm_Instances_Name` ON `vm_Instances` (`Name`)');
    // checkImageStatus (every insertInstance) looks images up by Name.
    await queryRunner.query('CREATE INDEX `vm_Images_Name` ON `vm_Images` (`Name`)');
    // Uptime fallback, history listing and plots read one instance's rows ordered by time.
    await queryRunner.query('CREATE INDEX `vm_History_InstanceID_Update` ON `vm_History` (`InstanceID`, `Update`)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const mysql = dialectOf(queryRunner) === 'mysql';
    for (const [table, index] of [
      ['vm_History', 'vm_History_InstanceID_Update'],
      ['vm_Images', 'vm_Images_Name'],
      ['vm_Instances', 'vm_Instances_Name'],
      ['vm_Instances', 'vm_Instances_UniqueID'],
    ]) {
      await queryRunner.query(mysql ? `DROP INDEX \`${index}\` ON \`${table}\`` : `DROP INDEX \`${index}\``);
    }
  }
}
