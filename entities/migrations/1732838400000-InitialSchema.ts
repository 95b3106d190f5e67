import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectOf } from './dialect';

/**
 * The seed's tablesDesc, column for column. SQLite has no UNSIGNED or
 * AUTO_INCREMENT: the id columns become INTEGER PRIMARY KEY AUTOINCREMENT (its
 * rowid alias) and the facade enforces the unsigned ranges before binding.
 */
export class InitialSchema1732838400000 implements MigrationInterface {
  name = 'InitialSchema1732838400000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = dialectOf(queryRunner) === 'mysql';
    const autoId = (name: string) =>
      mysql ? `\`${name}\` BIGINT UNSIGNED AUTO_INCREMENT NOT NULL` : `\`${name}\` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL`;
    const unsigned = mysql ? ' UNSIGNED' : '';
    const primaryKey = (name: string) => (mysql ? `,\n  PRIMARY KEY (\`${name}\`)` : '');
    // Binary collation: 'VM-1' and 'vm-1' are two UniqueIDs on MySQL as on SQLite.
    const tableOptions = mysql ? ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin' : '';

    await queryRunner.query(
      `CREATE TABLE \`vm_Images\` (
  ${autoId('VMImageID')},
  \`Name\` VARCHAR(255) NOT NULL,
  \`Status\` VARCHAR(16) NOT NULL,
  \`LastUpdate\` DATETIME,
  \`ErrorMessage\` VARCHAR(255) NOT NULL DEFAULT ''${primaryKey('VMImageID')}
)${tableOptions}`,
    );
    await queryRunner.query(
      `CREATE TABLE \`vm_Instances\` (
  ${autoId('InstanceID')},
  \`RunningPod\` VARCHAR(255) NOT NULL,
  \`Name\` VARCHAR(255) NOT NULL,
  \`Endpoint\` VARCHAR(255) NOT NULL,
  \`UniqueID\` VARCHAR(255) NOT NULL DEFAULT '',
  \`VMImageID\` INTEGER${unsigned} NOT NULL,
  \`Status\` VARCHAR(32) NOT NULL,
  \`LastUpdate\` DATETIME,
  \`PublicIP\` VARCHAR(32) NOT NULL DEFAULT '',
  \`PrivateIP\` VARCHAR(32) NOT NULL DEFAULT '',
  \`ErrorMessage\` VARCHAR(255) NOT NULL DEFAULT '',
  \`MaxAllowedPrice\` FLOAT DEFAULT NULL,
  \`Uptime\` INTEGER${unsigned} DEFAULT 0,
  \`Load\` FLOAT DEFAULT 0,
  \`Jobs\` INTEGER${unsigned} NOT NULL DEFAULT 0${primaryKey('InstanceID')}
)${tableOptions}`,
    );
    await queryRunner.query(
      `CREATE TABLE \`vm_History\` (
  \`InstanceID\` INTEGER${unsigned} NOT NULL,
  \`Status\` VARCHAR(32) NOT NULL,
  \`Load\` FLOAT NOT NULL,
  \`Jobs\` INTEGER${unsigned} NOT NULL DEFAULT 0,
  \`TransferredFiles\` INTEGER${unsigned} NOT NULL DEFAULT 0,
  \`TransferredBytes\` BIGINT${unsigned} NOT NULL DEFAULT 0,
  \`Update\` DATETIME
)${tableOptions}`,
    );
    // Index names are the seed's; SQLite keeps index names per schema, and these two do not collide.
    await queryRunner.query('CREATE INDEX `Status` ON `vm_Instances` (`Status`)');
    await queryRunner.query('CREATE INDEX `InstanceID` ON `vm_History` (`InstanceID`)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE `vm_History`');
    await queryRunner.query('DROP TABLE `vm_Instances`');
    await queryRunner.query('DROP TABLE `vm_Images`');
  }
}
