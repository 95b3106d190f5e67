export { VmImage } from './VmImage';
export { VmInstance } from './VmInstance';
export { VmHistory } from './VmHistory';
export { MIGRATIONS } from './migrations';
export * from './tables';
export * from './states';
