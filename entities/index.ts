export { VmImage } from './VmImage';
export { VmInstance } from './VmInstance';
export { VmHistory } from './VmHistory';
export { VmEndpointControl } from './VmEndpointControl';
export { VmInstanceControl } from './VmInstanceControl';
export { VmFleetControl } from './VmFleetControl';
export { MIGRATIONS } from './migrations';
export * from './tables';
export * from './states';
