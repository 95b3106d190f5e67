import { type Command, InvalidArgumentError } from 'commander';
import type * as UsageModule from '../../db/usage';
import type * as FleetConfigModule from '../../config/fleet';
import type * as ApiConfigModule from '../../api/config';
import type * as ApiServerModule from '../../api/server';
import type * as ConfigModule from '../../config/database';
import type * as GracefulModule from '../../ops/graceful';
import type * as LifecycleClientModule from '../../temporal/lifecycle-client';
import type * as SettingsModule from '../../config/settings';
import type * as TlsModule from '../../api/tls';
import type * as TemporalConfigModule from '../../config/temporal';
import type * as VmdbModule from '../../db/vmdb';
import { CliError, EXIT } from '../errors';

/**
 * The HTTP API's modules, loaded only by `vmdb server` (Fastify and its
 * plugins are not needed by the other commands). A build without the API
 * says so instead of failing with a module error.
 */
function loadApi(): { server: typeof ApiServerModule; config: typeof ApiConfigModule } {
  const load = <T>(path: string): T => {
    try {
      return require(path) as T;
    } catch (err) {
      const e = err as { code?: string; message?: string };
      if (e.code === 'MODULE_NOT_FOUND' && e.message?.includes(path.replace(/^(\.\.\/)+/, ''))) throw new CliError(EXIT.FAILED, 'HTTP API not available in this build');
      throw new CliError(EXIT.FAILED, `the HTTP API cannot be loaded: ${String(e.message).split('\n')[0]}`);
    }
  };
  const server = load<typeof ApiServerModule>('../../api/server');
  const config = load<typeof ApiConfigModule>('../../api/config');
  if (typeof server.buildApi !== 'function' || typeof config.loadApiConfig !== 'function') throw new CliError(EXIT.FAILED, 'HTTP API not available in this build');
  return { server, config };
}

function port(raw: string): number {
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) throw new InvalidArgumentError(`"${raw}" is not a port number (0-65535).`);
  return Number(raw);
}

/** Resolves on the first SIGINT/SIGTERM; a second one ends the process at once. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals) => {
      process.off('SIGINT', first);
      process.off('SIGTERM', first);
      const again = () => process.exit(EXIT.FAILED);
      process.once('SIGINT', again);
      process.once('SIGTERM', again);
      resolve(signal);
    };
    process.on('SIGINT', first);
    process.on('SIGTERM', first);
  });
}

export function registerServerCommand(program: Command): void {
  program
    .command('server')
    .description('run the HTTP API until SIGINT/SIGTERM; with VMDB_API_TLS_CERT and VMDB_API_TLS_KEY over HTTPS, SIGHUP rereads them (VMDB_OPERATOR_TOKENS_FILE and/or VMDB_ADMIN_TOKEN, VMDB_TOKEN_SECRET, VMDB_API_HOST, VMDB_API_PORT, VMDB_METRICS_TOKEN, VMDB_RATE_LIMITS, VMDB_TRUST_PROXY, VMDB_DATABASE_URL, VMDB_AUTO_MIGRATE, TEMPORAL_*)')
    .option('--host <host>', 'address to listen on (overrides VMDB_API_HOST, default 127.0.0.1)')
    .option('--port <port>', 'port to listen on (overrides VMDB_API_PORT, default 8080; 0: any free port)', port)
    .option('--quiet', 'no request log')
    .action(async (options: { host?: string; port?: number; quiet?: boolean }) => {
      const api = loadApi();
      const { loadConfig } = require('../../config/database') as typeof ConfigModule;
      const { connectClient, loadTemporalSettings } = require('../../config/temporal') as typeof TemporalConfigModule;
      const { LifecycleClient } = require('../../temporal/lifecycle-client') as typeof LifecycleClientModule;
      const { VirtualMachineDB } = require('../../db/vmdb') as typeof VmdbModule;
      const { applyConfigFile, loadSettings } = require('../../config/settings') as typeof SettingsModule;
      const tls = require('../../api/tls') as typeof TlsModule;

      let settings: ReturnType<typeof api.config.loadApiConfig>;
      let config: ReturnType<typeof loadConfig>;
      let temporal: ReturnType<typeof loadTemporalSettings>;
      let certificate: ReturnType<typeof tls.readTlsFiles> | undefined;
      try {
        // Every setting at once (unknown VMDB_* variables, bad urls, missing secrets), then each part's own.
        applyConfigFile(process.env); // VMDB_CONFIG_FILE under the environment, for every reader
        loadSettings(process.env, { require: ['api'] });
        settings = api.config.loadApiConfig();
        config = loadConfig();
        temporal = loadTemporalSettings();
        certificate = settings.tls ? tls.readTlsFiles(settings.tls) : undefined;
      } catch (err) {
        throw new CliError(EXIT.USAGE, (err as Error).message);
      }
      const host = options.host ?? settings.host;
      const listenPort = options.port ?? settings.port;

      // Undone in reverse order: the API first (Fastify's close waits for the requests in flight,
      // so an accepted heartbeat still gets its answer), then Temporal, then the database.
      const cleanups: (() => Promise<unknown>)[] = [];
      const cleanUp = async () => {
        for (const step of cleanups.reverse()) await step().catch(() => undefined);
      };
      try {
        // VMDB_AUTO_MIGRATE=false: a schema that is behind stops the server (run `vmdb migrate`).
        const db = await VirtualMachineDB.open({ url: config.databaseUrl, stallingInterval: config.stallingInterval, migrate: config.autoMigrate ?? true });
        cleanups.push(() => db.close());
        let client: Awaited<ReturnType<typeof connectClient>>;
        try {
          client = await connectClient(temporal);
        } catch (err) {
          throw new Error(`cannot connect to Temporal at ${temporal.address}: ${(err as Error).message}`);
        }
        cleanups.push(() => client.connection.close());
        const fleet = (require('../../config/fleet') as typeof FleetConfigModule).loadFleetConfig();
        const app = await api.server.buildApi({
          db,
          lifecycle: new LifecycleClient(client, db),
          temporal: client,
          operators: settings.operators,
          tokenSecret: settings.tokenSecret,
          previousTokenSecrets: settings.previousTokenSecrets,
          metricsToken: settings.metricsToken,
          rateLimits: settings.rateLimits,
          tls: certificate,
          trustProxy: settings.trustProxy,
          logger: options.quiet ? false : { level: 'info' },
          temporalUi: settings.temporalUiUrl ? { url: settings.temporalUiUrl, namespace: temporal.namespace } : undefined,
          // The API's pulse tells the stall guard that VMs can report (fleet file: safety.pulse).
          safety: fleet.safety,
          prices: (require('../../db/usage') as typeof UsageModule).usagePrices(fleet),
        });
        const { closeApi } = require('../../ops/graceful') as typeof GracefulModule;
        cleanups.push(() => closeApi(app));
        await app.listen({ host, port: listenPort });
        if (settings.tls) {
          // Written whatever --quiet says: an operator who sent SIGHUP wants to know how it went.
          const report = (line: string) => process.stderr.write(`${line}\n`);
          const stop = tls.reloadOnSighup(app.server as unknown as Parameters<typeof tls.reloadOnSighup>[0], settings.tls, { info: report, error: report });
          cleanups.push(async () => stop());
        }
        const address = app.server.address();
        const scheme = settings.tls ? 'https' : 'http';
        const where = typeof address === 'object' && address ? `${scheme}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : String(address);
        process.stderr.write(`vmdb API on ${where} (docs ${where}/docs, OpenAPI ${where}/openapi.json); ${settings.operators.length} operator token(s)${certificate ? `; certificate ${tls.describeCertificate(certificate.cert)}, SIGHUP rereads it` : ''}; Ctrl-C stops it\n`);
        const signal = await untilSignal();
        process.stderr.write(`${signal}: stopping the API\n`);
      } catch (err) {
        await cleanUp();
        if (err instanceof CliError) throw err;
        throw new CliError(EXIT.FAILED, `server: ${(err as Error).message}`);
      }
      await cleanUp();
    });
}
