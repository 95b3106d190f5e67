import { readFileSync } from 'node:fs';
import { Connection, Client } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import { settingsFor } from './settings';

/** Where the Temporal cluster is and how to reach it (environment variables in parentheses). */
export interface TemporalSettings {
  /** host:port of the frontend (TEMPORAL_ADDRESS, default 127.0.0.1:7233). */
  address: string;
  /** (TEMPORAL_NAMESPACE, default "default") */
  namespace: string;
  /** (VMDB_TASK_QUEUE, default "vmdb", workflows/definitions.ts DEFAULT_TASK_QUEUE) */
  taskQueue: string;
  /** mTLS to a self-hosted cluster or Temporal Cloud (TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA, TEMPORAL_TLS_SERVER_NAME files/names). */
  tls?: { certFile?: string; keyFile?: string; caFile?: string; serverName?: string };
  /** Temporal Cloud API key instead of mTLS (TEMPORAL_API_KEY). */
  apiKey?: string;
}

/** The Temporal settings; throws an Error naming a bad one (src/settings.ts does the checking). */
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
