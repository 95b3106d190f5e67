import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Pause and backoff of one endpoint (migration FleetSafety). Schema from migrations, never synchronize. */
@Entity({ name: 'vm_EndpointControl', synchronize: false })
export class VmEndpointControl {
  @PrimaryColumn({ name: 'Endpoint', type: 'varchar', length: 255 })
  Endpoint!: string;

  @Column({ name: 'Paused', type: 'int', unsigned: true, default: 0 })
  Paused!: number;

  @Column({ name: 'PauseReason', type: 'varchar', length: 255, default: '' })
  PauseReason!: string;

  /** Consecutive failed creations since the last success. */
  @Column({ name: 'Failures', type: 'int', unsigned: true, default: 0 })
  Failures!: number;

  /** An EndpointFailureReason, or 'error' for an unclassified failure. */
  @Column({ name: 'LastReason', type: 'varchar', length: 32, default: '' })
  LastReason!: string;

  @Column({ name: 'LastMessage', type: 'varchar', length: 255, default: '' })
  LastMessage!: string;

  @Column({ name: 'LastFailure', type: 'datetime', nullable: true })
  LastFailure!: Date | null;

  @Column({ name: 'BackoffUntil', type: 'datetime', nullable: true })
  BackoffUntil!: Date | null;

  @Column({ name: 'LastUpdate', type: 'datetime', nullable: true })
  LastUpdate!: Date | null;
}
