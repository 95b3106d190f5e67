export { instanceLifecycle } from './instanceLifecycle';
export { directorPass, reconcilePass, stalledSweep } from './director';
