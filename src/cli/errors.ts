/**
 * Exit codes scripts can rely on:
 * - 0 success
 * - 1 the operation failed (the API refused it, an instance is unknown, a stop was refused for some id, a local command failed)
 * - 2 bad arguments or usage (commander's own errors too)
 * - 3 the API cannot be reached, did not answer in time, is unavailable (502/503/504), or refused the token (401/403)
 */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  UNREACHABLE: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI reports as one line on stderr (no stack trace) and exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usageError = (message: string) => new CliError(EXIT.USAGE, message);
export const failure = (message: string) => new CliError(EXIT.FAILED, message);
