import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/**
 * HTTPS at the API: the certificate and key files (VMDB_API_TLS_CERT, VMDB_API_TLS_KEY), read at
 * start and again on SIGHUP, so that a renewed certificate is served without closing the listener.
 */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

/** Where reloads are reported: `vmdb server` writes lines, `npm start` logs. */
export interface TlsReloadLog {
  info(message: string): void;
  error(message: string): void;
}

/** A server that can take a new certificate without restarting: node:https's Server. */
interface SecureServer {
  setSecureContext(options: { cert: Buffer; key: Buffer }): void;
}

/**
 * Reads the pair and checks that the key is the certificate's: a bad pair fails here, with the
 * settings' names, rather than at every handshake.
 */
export function readTlsFiles(files: TlsFiles): TlsMaterial {
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`${name}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const cert = read('VMDB_API_TLS_CERT', files.certFile);
  const key = read('VMDB_API_TLS_KEY', files.keyFile);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`VMDB_API_TLS_CERT (${files.certFile}) and VMDB_API_TLS_KEY (${files.keyFile}) are not a usable pair: ${(err as Error).message}`);
  }
  return { cert, key };
}

/** "sha256 AB:CD:..., valid until ...", for the logs. */
export function describeCertificate(cert: Buffer): string {
  try {
    const x509 = new X509Certificate(cert);
    return `${x509.subject.replace(/\n/g, ', ')}, valid until ${x509.validTo}, sha256 ${x509.fingerprint256}`;
  } catch (err) {
    return `unparsable certificate: ${(err as Error).message}`;
  }
}

/** Serves the files' certificate from now on; on any failure the old one stays. Returns whether it changed. */
export function reloadTls(server: SecureServer, files: TlsFiles, log: TlsReloadLog): boolean {
  try {
    const material = readTlsFiles(files);
    server.setSecureContext(material);
    log.info(`TLS certificate reloaded: ${describeCertificate(material.cert)}`);
    return true;
  } catch (err) {
    log.error(`TLS certificate not reloaded, the previous one is still served: ${(err as Error).message}`);
    return false;
  }
}

/** Reloads on each SIGHUP; returns the function that stops listening for it. */
export function reloadOnSighup(server: SecureServer, files: TlsFiles, log: TlsReloadLog): () => void {
  const onHup = () => void reloadTls(server, files, log);
  process.on('SIGHUP', onHup);
  return () => void process.off('SIGHUP', onHup);
}
