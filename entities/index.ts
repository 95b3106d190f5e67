export { VmImage } from './VmImage';
export { VmInstance } from './VmInstance';
export { VmHistory } from './VmHistory';
export { VmEndpointControl, VmFleetControl, VmInstanceControl } from './safety';
export { MIGRATIONS } from './migrations';
export * from './tables';
export * from './states';
