/** DIRAC-style results: code written against the original keeps its habits. */
export type Ok<T> = { OK: true; Value: T };
export type Failure = { OK: false; Message: string; State?: string; readonly code?: FailureCode };
export type Result<T> = Ok<T> | Failure;

/**
 * What kind of failure, set where it starts, so that nobody reads the message to find out.
 * Absent: the request was wrong (bad input, a refusal that names no state).
 */
export type FailureCode =
  /** An id the record does not know. */
  | 'not_found'
  /** The transition table refused it; State says stop, halt or the current status. */
  | 'refused'
  /** No workflow runs for the instance: it has finished or never started. */
  | 'no_lifecycle'
  /** The instance has no VM yet, so no VM can speak for it. */
  | 'not_ready'
  /** The database failed (connection lost, deadlock...): retrying later may succeed. */
  | 'database_unavailable'
  /** Temporal could not be reached, or did not answer in time. */
  | 'temporal_unavailable';

export function S_OK<T>(Value: T): Ok<T> {
  return { OK: true, Value };
}

/**
 * A failure. Its `code` is not enumerable: the facade's results keep exactly the shape of DIRAC's
 * (`OK`, `Message`, `State`) when compared or sent as JSON, and callers inside vmdb read the code.
 * A failure with a State and no code is a refusal.
 */
export function S_ERROR(Message: string, State?: string, code?: FailureCode): Failure {
  const failure: Failure = State === undefined ? { OK: false, Message } : { OK: false, Message, State };
  // A State is what a refused transition answers (stop, halt or the current status).
  const kind = code ?? (State === undefined ? undefined : 'refused');
  if (kind !== undefined) Object.defineProperty(failure, 'code', { value: kind, enumerable: false });
  return failure;
}

/** The code of a result that failed (undefined for a success or a plain failure). */
export function failureCode(result: Result<unknown>): FailureCode | undefined {
  return result.OK ? undefined : result.code;
}

/** Bad input found by a validator: becomes `OK: false` with this message, before any SQL runs. */
export class InputError extends Error {}

/** A refusal raised part-way through a transaction: the transaction rolls back, the caller gets `result`. */
export class Refusal extends Error {
  constructor(readonly result: Failure) {
    super(result.Message);
  }
}

/** Prefix of the message of failures caused by the database itself, as DIRAC words them. */
export const DATABASE_ERROR_PREFIX = 'Database error: ';

/** True when retrying later may succeed: the database failed, the request did not. */
export function isDatabaseError(result: Result<unknown>): boolean {
  return failureCode(result) === 'database_unavailable';
}
