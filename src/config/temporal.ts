import { readFileSync } from 'node:fs';
import { Connection, Client } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import { type TemporalSettings, settingsFor } from './settings';

export type { TemporalSettings };

/** The Temporal settings; throws an Error naming a bad one (src/config/settings.ts does the checking). */
export function loadTemporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  return settingsFor(env, TEMPORAL_SETTINGS).temporal;
}

/** The names loadTemporalSettings reads. */
export const TEMPORAL_SETTINGS = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
  'VMDB_TASK_QUEUE',
  'TEMPORAL_TLS',
  'TEMPORAL_TLS_CERT',
  'TEMPORAL_TLS_KEY',
  'TEMPORAL_TLS_CA',
  'TEMPORAL_TLS_SERVER_NAME',
  'TEMPORAL_API_KEY',
] as const;

function tlsOptions(settings: TemporalSettings): NativeConnectionOptions['tls'] {
  const tls = settings.tls;
  if (!tls) return undefined;
  return {
    serverNameOverride: tls.serverName,
    serverRootCACertificate: tls.caFile ? readFileSync(tls.caFile) : undefined,
    clientCertPair: tls.certFile && tls.keyFile ? { crt: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : undefined,
  };
}

export async function connectClient(settings: TemporalSettings): Promise<Client> {
  const connection = await Connection.connect({ address: settings.address, tls: tlsOptions(settings), apiKey: settings.apiKey });
  return new Client({ connection, namespace: settings.namespace });
}

export async function connectWorkerConnection(settings: TemporalSettings): Promise<NativeConnection> {
  return NativeConnection.connect({ address: settings.address, tls: tlsOptions(settings), apiKey: settings.apiKey });
}
