import { InitialSchema1732838400000 } from './1732838400000-InitialSchema';
import { LookupIndexes1732838500000 } from './1732838500000-LookupIndexes';
import { FleetQueryIndexes1732838600000 } from './1732838600000-FleetQueryIndexes';
import { FleetSafety1764460800000 } from './1764460800000-FleetSafety';
import { InstanceLife1765000000000 } from './1765000000000-InstanceLife';
import { ElasticFleet1765100000000 } from './1765100000000-ElasticFleet';
import { AuditTrail1765200000000 } from './1765200000000-AuditTrail';

/** Every migration, oldest first. */
export const MIGRATIONS = [InitialSchema1732838400000, LookupIndexes1732838500000, FleetQueryIndexes1732838600000, FleetSafety1764460800000, InstanceLife1765000000000, ElasticFleet1765100000000, AuditTrail1765200000000];
