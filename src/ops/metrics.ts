import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { INSTANCE_STATES } from '../../entities/states';
import { AUDIT_ACTIONS } from '../db/audit-store';
import { type UsageTotal, usageTotals } from '../db/usage';
import { observeTransitions } from '../db/lifecycle';
import type { VirtualMachineDB } from '../db/vmdb';
import { METRICS_MESSAGES, metricsAccess } from './metrics-access';

/**
 * vmdb's Prometheus metrics: one registry per process, served as `/metrics` by
 * the API (src/api/server.ts) and by the worker (its own port, run-worker.ts).
 * Temporal's own worker metrics come from the SDK runtime, on another port.
 */
export const registry = new Registry();

// The usual Node process metrics (process_cpu_seconds_total, nodejs_eventloop_lag_seconds, ...),
// under their standard names so that stock dashboards find them.
collectDefaultMetrics({ register: registry });

export const DIRECTIVES = ['ok', 'stop', 'halt'] as const;

export const heartbeats = new Counter({
  name: 'vmdb_heartbeats_total',
  help: 'Heartbeats received by the API, by the directive they were answered with (none: refused or failed, no directive)',
  labelNames: ['directive'] as const,
  registers: [registry],
});

export const heartbeatSignals = new Counter({
  name: 'vmdb_heartbeat_signals_total',
  help: "Signals of recorded heartbeats to their workflows, by outcome: sent, missed (Temporal unreachable or too slow; the record holds the heartbeat and the stall compare-and-set makes the miss harmless) or closed (the workflow has ended)",
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const endpointStopFailures = new Counter({
  name: 'vmdb_endpoint_stop_failures_total',
  help: 'Attempts to stop a VM at its endpoint that failed, per endpoint (the workflow retries with backoff; see vmdb_instances_halt_pending)',
  labelNames: ['endpoint'] as const,
  registers: [registry],
});

export const transitions = new Counter({
  name: 'vmdb_transitions_total',
  help: 'Committed status changes of instances and images (kind Instance or Image), from the stored status to the new one; refreshes are not counted',
  labelNames: ['kind', 'from', 'to'] as const,
  registers: [registry],
});

export const directorLaunches = new Counter({
  name: 'vmdb_director_launches_total',
  help: 'Instances the Director reserved and started a life-cycle workflow for, per endpoint',
  labelNames: ['endpoint'] as const,
  registers: [registry],
});

export const directorFailures = new Counter({
  name: 'vmdb_director_failures_total',
  help: 'Director steps that failed for an endpoint (reserving slots or starting a workflow)',
  labelNames: ['endpoint'] as const,
  registers: [registry],
});

export const activityFailures = new Counter({
  name: 'vmdb_activity_failures_total',
  help: 'Activity attempts that failed on this worker, by activity type (cancellations are not failures)',
  labelNames: ['activity'] as const,
  registers: [registry],
});

export const sshContextualization = new Histogram({
  name: 'vmdb_ssh_contextualization_seconds',
  help: 'Duration of SSH contextualization attempts (upload and command), by outcome: success, a failure type such as ContextualizationFailed, or cancelled',
  labelNames: ['outcome'] as const,
  buckets: [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800],
  registers: [registry],
});

export const safetyGuardTripped = new Gauge({
  name: 'vmdb_safety_guard_tripped',
  help: 'Fleet-safety guard per scope (fleet, or endpoint:<Site::CE>): 1 while too many Running instances are silent at once and stalls are held back',
  labelNames: ['scope'] as const,
  registers: [registry],
});

export const safetyHeld = new Counter({
  name: 'vmdb_safety_held_total',
  help: 'Automatic actions (stall, halt, lifetime, drain) held back by a safety rule: manual control, outage, guard, halt cap',
  labelNames: ['action', 'rule'] as const,
  registers: [registry],
});

export const endpointBackoff = new Gauge({
  name: 'vmdb_endpoint_backoff_seconds',
  help: 'Seconds the Director still backs off an endpoint after failed creations (0: launching), as of its last pass',
  labelNames: ['endpoint'] as const,
  registers: [registry],
});

export const directorDemand = new Gauge({
  name: 'vmdb_director_demand_jobs',
  help: 'Waiting jobs the demand source of an endpoint gave at the Director\'s last pass (no series: no source; -1: the source failed)',
  labelNames: ['endpoint'] as const,
  registers: [registry],
});

export const directorTarget = new Gauge({
  name: 'vmdb_director_target_instances',
  help: 'Instances the Director launches toward at an endpoint with a demand source, as of its last pass',
  labelNames: ['endpoint'] as const,
  registers: [registry],
});

export const reconcileFindings = new Counter({
  name: 'vmdb_reconcile_findings_total',
  help: 'Reconciliation findings: zombies (in the cloud, not alive in the database), ghosts (alive in the database, gone from the cloud), failed listings',
  labelNames: ['endpoint', 'kind'] as const,
  registers: [registry],
});

export const auditWriteFailures = new Counter({
  name: 'vmdb_audit_write_failures_total',
  help: 'Operator actions the API could not record in the audit trail (vm_AuditLog), by action; each miss is also logged at error level',
  labelNames: ['action'] as const,
  registers: [registry],
});

for (const directive of [...DIRECTIVES, 'none']) heartbeats.inc({ directive }, 0);
sshContextualization.zero({ outcome: 'success' });
// Every action has a series from the start, so that an alert on its increase sees the first miss.
for (const action of AUDIT_ACTIONS) auditWriteFailures.inc({ action }, 0);

observeTransitions((kind, from, to) => transitions.inc({ kind, from, to }));

export const instanceScrapeErrors = new Counter({
  name: 'vmdb_instances_scrape_errors_total',
  help: 'Scrapes at which the instance counts or the usage totals could not be read from the database',
  registers: [registry],
});

// The databases whose instances the gauge counts; the latest registered one answers.
const instanceSources: VirtualMachineDB[] = [];

export const instances = new Gauge({
  name: 'vmdb_instances',
  help: 'Instances by status, read from the database at each scrape (getInstanceCounters)',
  labelNames: ['status'] as const,
  registers: [registry],
  async collect() {
    const db = instanceSources.at(-1);
    this.reset();
    if (!db) return;
    const counters = await db.getInstanceCounters('Status');
    if (!counters.OK) {
      instanceScrapeErrors.inc();
      return; // no series rather than stale ones
    }
    for (const status of INSTANCE_STATES) this.set({ status }, counters.Value[status] ?? 0);
    for (const [status, n] of Object.entries(counters.Value)) {
      if (!(INSTANCE_STATES as readonly string[]).includes(status)) this.set({ status: 'invalid' }, n);
    }
  },
});

export const haltPending = new Gauge({
  name: 'vmdb_instances_halt_pending',
  help: 'Instances whose VM the endpoint keeps refusing to stop ("halt pending"; their workflows keep retrying), read from the database at each scrape',
  registers: [registry],
  async collect() {
    const db = instanceSources.at(-1);
    this.reset();
    if (!db) return;
    const pending = await db.countHaltPending();
    if (pending.OK) this.set(pending.Value);
    else instanceScrapeErrors.inc();
  },
});

/** The usage totals are a full aggregate of vm_History: read at most once per this many ms. */
const USAGE_CACHE_MS = 60_000;
let usageCache: { at: number; totals: UsageTotal[] } | undefined;

export const vmSeconds = new Counter({
  name: 'vmdb_vm_seconds_total',
  help: 'VM-seconds used per endpoint, image and pod, from vm_History (each instance from its first row other than New to its last row; /3600 for VM-hours), read at most once a minute',
  labelNames: ['endpoint', 'image', 'pod'] as const,
  registers: [registry],
  async collect() {
    const db = instanceSources.at(-1);
    if (!db) return;
    if (!usageCache || Date.now() - usageCache.at >= USAGE_CACHE_MS) {
      try {
        usageCache = { at: Date.now(), totals: await usageTotals(db) };
      } catch {
        instanceScrapeErrors.inc();
        return; // the last values stay: a counter must not go down
      }
    }
    this.reset();
    for (const t of usageCache.totals) this.inc({ endpoint: t.endpoint, image: t.image, pod: t.pod }, t.vmSeconds);
  },
});

/** Forgets the cached usage totals (tests). */
export function refreshUsageTotals(): void {
  usageCache = undefined;
}

/** Makes `vmdb_instances` count the instances of `db` (until the returned function is called). */
export function trackInstances(db: VirtualMachineDB): () => void {
  instanceSources.push(db);
  return () => {
    const at = instanceSources.lastIndexOf(db);
    if (at >= 0) instanceSources.splice(at, 1);
  };
}

/** The Prometheus text exposition of every metric of this process. */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/**
 * Reads a `[host:]port` setting (a bare port listens on 127.0.0.1; 0 disables). Returns
 * `host:port`, or undefined when disabled. Throws a message naming the variable when malformed.
 */
export function metricsBindAddress(name: string, value: string | undefined, defaultPort: number): string | undefined {
  const text = (value ?? '').trim() || String(defaultPort);
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new Error(`${name}: "${value}" is not a port or host:port`);
  if (port === 0) return undefined;
  return `${match[1] ?? '127.0.0.1'}:${port}`;
}

/**
 * An HTTP server answering GET /metrics with this process's registry (the worker's own endpoint),
 * to the callers metricsAccess lets through: the bearer of `token`, or without one loopback only.
 */
export async function serveMetrics(bindAddress: string, options: { token?: string } = {}): Promise<Server> {
  const at = bindAddress.lastIndexOf(':');
  const host = bindAddress.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(bindAddress.slice(at + 1));
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: GET /metrics\n');
      return;
    }
    const access = metricsAccess(options.token, req.headers.authorization, req.socket.remoteAddress);
    if (access !== 'allowed') {
      const headers = { 'content-type': 'application/json; charset=utf-8', ...(access === 'unauthorized' ? { 'www-authenticate': 'Bearer' } : {}) };
      res.writeHead(access === 'unauthorized' ? 401 : 403, headers).end(`${JSON.stringify({ error: access, message: METRICS_MESSAGES[access] })}\n`);
      return;
    }
    renderMetrics().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** The port a server listens on (serveMetrics('127.0.0.1:0') picks a free one). */
export function listeningPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
