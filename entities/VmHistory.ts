import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * One row of `vm_History` (seed tablesDesc). The table has no primary key in
 * the database; TypeORM insists on one per entity, so the entity declares
 * (InstanceID, Update, Status) as its identity. That declaration lives only
 * here: the schema comes from migrations (synchronize is off).
 */
@Entity({ name: 'vm_History', synchronize: false })
@Index('InstanceID', ['InstanceID'])
export class VmHistory {
  @PrimaryColumn({ name: 'InstanceID', type: 'int', unsigned: true })
  InstanceID!: number;

  @PrimaryColumn({ name: 'Status', type: 'varchar', length: 32 })
  Status!: string;

  @Column({ name: 'Load', type: 'float' })
  Load!: number;

  @Column({ name: 'Jobs', type: 'int', unsigned: true, default: 0 })
  Jobs!: number;

  @Column({ name: 'TransferredFiles', type: 'int', unsigned: true, default: 0 })
  TransferredFiles!: number;

  @Column({ name: 'TransferredBytes', type: 'bigint', unsigned: true, default: 0 })
  TransferredBytes!: number;

  @PrimaryColumn({ name: 'Update', type: 'datetime' })
  Update!: Date | null;
}
