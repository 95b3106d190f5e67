import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One operator action and its outcome (migration AuditTrail). Written once, never updated. */
@Entity({ name: 'vm_AuditLog', synchronize: false })
@Index('vm_AuditLog_InstanceID_ID', ['InstanceID', 'ID'])
@Index('vm_AuditLog_Operator_ID', ['Operator', 'ID'])
@Index('vm_AuditLog_Action_ID', ['Action', 'ID'])
@Index('vm_AuditLog_At', ['At'])
export class VmAuditLog {
  /** Increasing: the order of the trail and the keyset of its pages. */
  @PrimaryGeneratedColumn({ name: 'ID', type: 'bigint', unsigned: true })
  ID!: number;

  @Column({ name: 'At', type: 'datetime' })
  At!: Date;

  /** The operator token's name, and its role at the time. */
  @Column({ name: 'Operator', type: 'varchar', length: 255 })
  Operator!: string;

  @Column({ name: 'Role', type: 'varchar', length: 16, default: '' })
  Role!: string;

  /** One of AUDIT_ACTIONS (src/db/audit-store.ts). */
  @Column({ name: 'Action', type: 'varchar', length: 64 })
  Action!: string;

  /** What the action was aimed at: `instance:42`, `endpoint:Site::CE`, `fleet`, `schedule:vmdb-director`. */
  @Column({ name: 'Target', type: 'varchar', length: 255, default: '' })
  Target!: string;

  /** Set when the target is one instance, so that an instance's trail is one lookup. */
  @Column({ name: 'InstanceID', type: 'bigint', unsigned: true, nullable: true })
  InstanceID!: number | null;

  /** What was asked beyond the target: the mode, the reason given. */
  @Column({ name: 'Detail', type: 'varchar', length: 255, default: '' })
  Detail!: string;

  /** succeeded or failed. */
  @Column({ name: 'Outcome', type: 'varchar', length: 16 })
  Outcome!: string;

  @Column({ name: 'HttpStatus', type: 'int', unsigned: true, default: 0 })
  HttpStatus!: number;

  /** For a failure: the API's error code (forbidden, refused, not_found...), and its message. */
  @Column({ name: 'ErrorCode', type: 'varchar', length: 64, default: '' })
  ErrorCode!: string;

  @Column({ name: 'Message', type: 'varchar', length: 255, default: '' })
  Message!: string;
}
