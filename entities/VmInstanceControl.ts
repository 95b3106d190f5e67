import { Column, Entity, PrimaryColumn } from 'typeorm';

/** An instance under manual control: no automatic stall, halt or lifetime action touches it. */
@Entity({ name: 'vm_InstanceControl', synchronize: false })
export class VmInstanceControl {
  @PrimaryColumn({ name: 'InstanceID', type: 'bigint', unsigned: true })
  InstanceID!: number;

  @Column({ name: 'Reason', type: 'varchar', length: 255, default: '' })
  Reason!: string;

  @Column({ name: 'Since', type: 'datetime', nullable: true })
  Since!: Date | null;
}
