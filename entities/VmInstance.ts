import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One row of `vm_Instances` (seed tablesDesc). Schema is created by migrations, never by synchronize. */
@Entity({ name: 'vm_Instances', synchronize: false })
@Index('Status', ['Status'])
export class VmInstance {
  @PrimaryGeneratedColumn({ name: 'InstanceID', type: 'bigint', unsigned: true })
  InstanceID!: number;

  @Column({ name: 'RunningPod', type: 'varchar', length: 255 })
  RunningPod!: string;

  @Column({ name: 'Name', type: 'varchar', length: 255 })
  Name!: string;

  @Column({ name: 'Endpoint', type: 'varchar', length: 255 })
  Endpoint!: string;

  @Column({ name: 'UniqueID', type: 'varchar', length: 255, default: '' })
  UniqueID!: string;

  @Column({ name: 'VMImageID', type: 'int', unsigned: true })
  VMImageID!: number;

  @Column({ name: 'Status', type: 'varchar', length: 32 })
  Status!: string;

  @Column({ name: 'LastUpdate', type: 'datetime', nullable: true })
  LastUpdate!: Date | null;

  @Column({ name: 'PublicIP', type: 'varchar', length: 32, default: '' })
  PublicIP!: string;

  @Column({ name: 'PrivateIP', type: 'varchar', length: 32, default: '' })
  PrivateIP!: string;

  @Column({ name: 'ErrorMessage', type: 'varchar', length: 255, default: '' })
  ErrorMessage!: string;

  @Column({ name: 'MaxAllowedPrice', type: 'float', nullable: true, default: null })
  MaxAllowedPrice!: number | null;

  @Column({ name: 'Uptime', type: 'int', unsigned: true, nullable: true, default: 0 })
  Uptime!: number | null;

  @Column({ name: 'Load', type: 'float', nullable: true, default: 0 })
  Load!: number | null;

  @Column({ name: 'Jobs', type: 'int', unsigned: true, default: 0 })
  Jobs!: number;
}
