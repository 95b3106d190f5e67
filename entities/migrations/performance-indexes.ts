/**
 * Every index vmdb adds beyond the seed's schema, with the migration that creates it. The benchmark
 * of queries at fleet size drops exactly these to compare; the schema test checks the list against
 * the database the migrations build.
 */
export interface PerformanceIndex {
  table: 'vm_Images' | 'vm_Instances' | 'vm_History';
  name: string;
  columns: readonly string[];
  migration: string;
}

export const PERFORMANCE_INDEXES: readonly PerformanceIndex[] = [
  { table: 'vm_Instances', name: 'vm_Instances_UniqueID', columns: ['UniqueID'], migration: 'LookupIndexes1732838500000' },
  { table: 'vm_Instances', name: 'vm_Instances_Name', columns: ['Name'], migration: 'LookupIndexes1732838500000' },
  { table: 'vm_Images', name: 'vm_Images_Name', columns: ['Name'], migration: 'LookupIndexes1732838500000' },
  { table: 'vm_History', name: 'vm_History_InstanceID_Update', columns: ['InstanceID', 'Update'], migration: 'LookupIndexes1732838500000' },
  // A Status-filtered page sorted by LastUpdate reads this index in order (no sort of the matches).
  { table: 'vm_Instances', name: 'vm_Instances_Status_LastUpdate', columns: ['Status', 'LastUpdate'], migration: 'FleetQueryIndexes1732838600000' },
  // Totals by Status and counters of one Status by Endpoint read the index alone (vm_Images joined by VMImageID).
  { table: 'vm_Instances', name: 'vm_Instances_Status_Endpoint_Image', columns: ['Status', 'Endpoint', 'VMImageID'], migration: 'FleetQueryIndexes1732838600000' },
  { table: 'vm_Instances', name: 'vm_Instances_Endpoint_Status_Image', columns: ['Endpoint', 'Status', 'VMImageID'], migration: 'FleetQueryIndexes1732838600000' },
  // The running-instances history: Running rows in time order, InstanceID included.
  { table: 'vm_History', name: 'vm_History_Status_Update', columns: ['Status', 'Update', 'InstanceID'], migration: 'FleetQueryIndexes1732838600000' },
];
