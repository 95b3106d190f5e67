/** DIRAC-style results: code written against the original keeps its habits. */
export type Ok<T> = { OK: true; Value: T };
export type Failure = { OK: false; Message: string; State?: string };
export type Result<T> = Ok<T> | Failure;

export function S_OK<T>(Value: T): Ok<T> {
  return { OK: true, Value };
}

export function S_ERROR(Message: string, State?: string): Failure {
  return State === undefined ? { OK: false, Message } : { OK: false, Message, State };
}

/** Bad input found by a validator: becomes `OK: false` with this message, before any SQL runs. */
export class InputError extends Error {}

/** A refusal raised part-way through a transaction: the transaction rolls back, the caller gets `result`. */
export class Refusal extends Error {
  constructor(readonly result: Failure) {
    super(result.Message);
  }
}

/** Prefix of failures caused by the database itself (connection lost, deadlock...), not by the request. */
export const DATABASE_ERROR_PREFIX = 'Database error: ';

/** True when retrying later may succeed: the database failed, the request did not. */
export function isDatabaseError(result: Result<unknown>): boolean {
  return !result.OK && result.Message.startsWith(DATABASE_ERROR_PREFIX);
}
