export { instanceLifecycle } from './instanceLifecycle';
export { directorPass, stalledSweep } from './director';
