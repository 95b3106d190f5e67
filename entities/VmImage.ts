import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** One row of `vm_Images` (seed tablesDesc). Schema is created by migrations, never by synchronize. */
@Entity({ name: 'vm_Images', synchronize: false })
export class VmImage {
  @PrimaryGeneratedColumn({ name: 'VMImageID', type: 'bigint', unsigned: true })
  VMImageID!: number;

  @Column({ name: 'Name', type: 'varchar', length: 255 })
  Name!: string;

  @Column({ name: 'Status', type: 'varchar', length: 16 })
  Status!: string;

  @Column({ name: 'LastUpdate', type: 'datetime', nullable: true })
  LastUpdate!: Date | null;

  @Column({ name: 'ErrorMessage', type: 'varchar', length: 255, default: '' })
  ErrorMessage!: string;
}
