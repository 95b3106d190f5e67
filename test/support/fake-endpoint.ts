import { type CloudDriver, type CloudInstance, type CreateRequest, EndpointError, InvalidRequestError } from '../../src/drivers/driver';

/** How the endpoint answers the creates of one instance name. */
export interface CreatePlan {
  /** Transient failures before the first success (Infinity: never succeeds). */
  failures: number;
  /** Refused for good (a request no retry fixes). */
  refused?: boolean;
  /** The first success makes the VM but its answer is lost (the caller sees a failure). */
  loseAnswer?: boolean;
  /** After the lost answer, every create call fails before it could find the VM it made. */
  downAfterLoss?: boolean;
}

interface FakeVm {
  uniqueID: string;
  instanceName: string;
  stopped: boolean;
}

/**
 * A cloud endpoint in memory for the model-based test: it records every VM it created and every
 * stop, fails creates and stops as the schedule says, and is idempotent by name like a real driver.
 */
export class FakeEndpoint implements CloudDriver {
  readonly vms: FakeVm[] = [];
  private readonly plans = new Map<string, CreatePlan>();
  private stopFailures = 0;
  /** Stops that failed as planned, over the whole run. */
  stopsFailed = 0;
  private next = 0;

  constructor(readonly endpoint: string) {}

  plan(instanceName: string, plan: CreatePlan): void {
    this.plans.set(instanceName, { ...plan });
  }

  /** The next `count` stops fail (the endpoint is down for stops). */
  failStops(count: number): void {
    this.stopFailures = count;
  }

  async createInstance(req: CreateRequest): Promise<CloudInstance> {
    const plan = this.plans.get(req.instanceName) ?? { failures: 0 };
    if (plan.refused) throw new InvalidRequestError(`image ${req.imageName} does not exist here`);
    if (plan.downAfterLoss && !plan.loseAnswer) throw new EndpointError('unavailable', 'the endpoint stopped answering creates');
    const live = this.vms.find((vm) => vm.instanceName === req.instanceName && !vm.stopped);
    if (live) return this.toInstance(live);
    if (plan.failures > 0) {
      plan.failures--;
      throw new EndpointError('unavailable', 'the endpoint is overloaded');
    }
    const vm = { uniqueID: `fake-${++this.next}`, instanceName: req.instanceName, stopped: false };
    this.vms.push(vm);
    if (plan.loseAnswer) {
      plan.loseAnswer = false;
      throw new EndpointError('unavailable', 'the answer was lost on its way back');
    }
    return this.toInstance(vm);
  }

  async stopInstance(uniqueID: string): Promise<void> {
    if (this.stopFailures > 0) {
      this.stopFailures--;
      this.stopsFailed++;
      throw new EndpointError('unavailable', 'the endpoint does not answer stops');
    }
    const vm = this.vms.find((v) => v.uniqueID === uniqueID);
    if (vm) vm.stopped = true;
  }

  async getInstanceStatus(uniqueID: string): Promise<CloudInstance> {
    const vm = this.vms.find((v) => v.uniqueID === uniqueID);
    return vm ? this.toInstance(vm) : { uniqueID, status: 'unknown', publicIP: '', privateIP: '' };
  }

  async listInstances(): Promise<CloudInstance[]> {
    return this.vms.map((vm) => this.toInstance(vm));
  }

  private toInstance(vm: FakeVm): CloudInstance {
    return { uniqueID: vm.uniqueID, status: vm.stopped ? 'stopped' : 'running', publicIP: '192.0.2.10', privateIP: '10.0.0.10', instanceName: vm.instanceName };
  }
}
