import { VmTokenKeys, makeVmToken } from '../../src/auth/tokens';
import type { VirtualMachineDB } from '../../src/db/vmdb';

/** A VM token bound to the instance as the record names it (a made-up name when there is no such instance). */
export async function vmTokenOf(db: VirtualMachineDB, secret: string, instanceID: number): Promise<string> {
  const name = await db.getInstanceParameter('Name', instanceID);
  return makeVmToken(secret, instanceID, name.OK ? String(name.Value) : `no-instance-${instanceID}`);
}

/** True when `token` was signed with `secret` for this instance, bound to its name in the record. */
export async function tokenIsFor(db: VirtualMachineDB, secret: string, token: string, instanceID: number): Promise<boolean> {
  const claim = new VmTokenKeys([secret]).read(token);
  const name = await db.getInstanceParameter('Name', instanceID);
  return claim?.instanceID === instanceID && claim.keyId !== undefined && name.OK && claim.boundTo(String(name.Value));
}
