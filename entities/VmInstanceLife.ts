import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** The life cycle's own record of an instance, beside its seed row (migration InstanceLife). */
@Entity({ name: 'vm_InstanceLife', synchronize: false })
export class VmInstanceLife {
  @PrimaryColumn({ name: 'InstanceID', type: 'bigint', unsigned: true })
  InstanceID!: number;

  /** Bumped by every recorded change of the instance, so that reads of the record can be ordered. */
  @Column({ name: 'Version', type: 'bigint', unsigned: true, default: 0 })
  Version!: number;

  /** The agent's boot id and the sequence number of its last recorded heartbeat. */
  @Column({ name: 'BootID', type: 'varchar', length: 64, default: '' })
  BootID!: string;

  @Column({ name: 'Seq', type: 'bigint', unsigned: true, default: 0 })
  Seq!: number;

  /** When the VM is planned to be shut down, as its workflow decided. */
  @Column({ name: 'ShutdownAt', type: 'datetime', nullable: true })
  ShutdownAt!: Date | null;

  /** Since when the endpoint keeps refusing to stop the VM, and why. */
  @Index('vm_InstanceLife_HaltPendingSince')
  @Column({ name: 'HaltPendingSince', type: 'datetime', nullable: true })
  HaltPendingSince!: Date | null;

  @Column({ name: 'HaltPendingReason', type: 'varchar', length: 255, default: '' })
  HaltPendingReason!: string;
}
