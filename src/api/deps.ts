import type { Client } from '@temporalio/client';
import type { OperatorToken } from '../auth/tokens';
import type { RateLimitSettings, TrustProxy } from '../config/settings';
import type { VirtualMachineDB } from '../db/vmdb';
import type { UsagePrice } from '../db/usage';
import type { Logger } from '../ops/log';
import type { SafetyConfig } from '../safety/config';
import type { LifecycleClient } from '../temporal/lifecycle-client';

/** What the API's routes are given: the record, the workflows, and who may call. */
export interface ApiDeps {
  db: VirtualMachineDB;
  lifecycle: LifecycleClient;
  /** For the director routes and the health check; without it they answer 503 / "down". */
  temporal?: Client;
  operators: OperatorToken[];
  /** The secret VM tokens are signed with (src/auth/tokens.ts). */
  tokenSecret: string;
  /** Older secrets whose VM tokens are still accepted (a rotation: VMDB_TOKEN_SECRETS). */
  previousTokenSecrets?: string[];
  /**
   * A pino logger (the process logger, or a child of it); true: the process logger; an object:
   * a logger at its `level`; false or absent: no logs.
   */
  logger?: boolean | { level?: string } | Logger;
  /** The Temporal Web UI and namespace, for the dashboard's workflow links; absent: no links. */
  temporalUi?: { url: string; namespace: string };
  /** The built dashboard (`npm run build`); default dist/web beside this build. */
  dashboardDir?: string;
  /** When set, the API records its pulse (src/safety/pulse.ts) while it listens: VMs report through it. */
  safety?: SafetyConfig;
  /** VMDB_METRICS_TOKEN: the bearer token of /metrics; absent: only callers on this machine may scrape. */
  metricsToken?: string;
  /**
   * The rate limits (src/api/rate-limits.ts); absent or false: none. `vmdb server` and `npm start` pass
   * the settings' (on by default); tests and benchmarks that build the API themselves choose.
   */
  rateLimits?: RateLimitSettings;
  /** HTTPS with this certificate and key (readTlsFiles, src/api/tls.ts); absent: plain HTTP. */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /**
   * Fastify's `trustProxy` (VMDB_TRUST_PROXY): whose X-Forwarded-For gives `request.ip`, which the
   * rate limits and a VM's default public IP use; absent or false: the connection's address.
   */
  trustProxy?: TrustProxy;
  /** Prices per VM-hour of the fleet file's endpoints, for `GET /usage` (usagePrices); absent: no costs. */
  prices?: UsagePrice[];
}
