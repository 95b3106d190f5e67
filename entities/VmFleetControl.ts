import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Fleet-wide switches and marks by name: the mode, component pulses, outage and guard marks. */
@Entity({ name: 'vm_FleetControl', synchronize: false })
export class VmFleetControl {
  @PrimaryColumn({ name: 'Name', type: 'varchar', length: 255 })
  Name!: string;

  @Column({ name: 'Value', type: 'varchar', length: 255, default: '' })
  Value!: string;

  @Column({ name: 'LastUpdate', type: 'datetime', nullable: true })
  LastUpdate!: Date | null;
}
