/**
 * A steady heartbeat load over HTTP, one sender per instance, that remembers
 * what became of every request. Each heartbeat carries its sequence number in
 * `jobs` (and as its `seq`), so that its vm_History row can be found again afterwards.
 */

export interface Sent {
  instanceID: number;
  seq: number;
  phase: string;
  /** HTTP status, or 0 when no answer came (refused connection, timeout). */
  status: number;
  directive?: string;
  body?: string;
}

export class HeartbeatLoad {
  readonly sent: Sent[] = [];
  private readonly next = new Map<number, number>();
  private active = false;
  private loops: Promise<void>[] = [];
  phase = 'warm-up';

  constructor(
    private readonly apiUrl: string,
    private readonly instances: { instanceID: number; token: string }[],
    private readonly options: { pauseMs?: number; timeoutMs?: number } = {},
  ) {
    for (const { instanceID } of instances) this.next.set(instanceID, 1);
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    this.loops = this.instances.map((instance) => this.loop(instance));
  }

  /** Stops sending and waits for the requests in flight to be answered (or time out). */
  async stop(): Promise<void> {
    this.active = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  acknowledged(filter: (s: Sent) => boolean = () => true): Sent[] {
    return this.sent.filter((s) => filter(s) && isAcknowledged(s));
  }

  private async loop({ instanceID, token }: { instanceID: number; token: string }): Promise<void> {
    const pause = this.options.pauseMs ?? 100;
    while (this.active) {
      const seq = this.next.get(instanceID)!;
      const outcome = await this.beat(instanceID, token, seq);
      this.sent.push(outcome);
      // As the agent does: a heartbeat that got no answer or a 5xx is sent again with the same
      // number (recorded once, whatever became of the first try), after a longer pause.
      const retry = outcome.status === 0 || outcome.status >= 500;
      if (!retry) this.next.set(instanceID, seq + 1);
      await new Promise((r) => setTimeout(r, retry ? pause * 5 : pause));
    }
  }

  private async beat(instanceID: number, token: string, seq: number): Promise<Sent> {
    const phase = this.phase;
    try {
      const res = await fetch(`${this.apiUrl}/api/v1/vms/${instanceID}/heartbeat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ load: 0.25, jobs: seq, transferredFiles: 0, transferredBytes: seq, uptime: seq, bootId: `load-${instanceID}`, seq }),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
      });
      const body = await res.text();
      let directive: string | undefined;
      try {
        directive = (JSON.parse(body) as { directive?: string }).directive;
      } catch {
        // not JSON: kept as text below
      }
      return { instanceID, seq, phase, status: res.status, directive, body: res.status === 200 ? undefined : body.slice(0, 300) };
    } catch (err) {
      return { instanceID, seq, phase, status: 0, body: (err as Error).message };
    }
  }
}

/** Acknowledged: HTTP 200 with a directive; the API promises the heartbeat was committed. */
export function isAcknowledged(s: Sent): boolean {
  return s.status === 200 && typeof s.directive === 'string';
}
