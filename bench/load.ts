/**
 * The heartbeat benchmark's two kinds of load: closed loop (a fixed number of lanes, each sending
 * its next call when the last one is answered: the rate at saturation) and open loop (calls started
 * on a schedule at a fixed rate whatever the answers: the latency at a given offered load).
 */
import { performance } from 'node:perf_hooks';
import { latencySummary, round } from './support';

/** Resolves to null on success, or to a short kind of error. */
export type Call = (seq: number) => Promise<string | null>;

export interface RunFigures {
  sent: number;
  succeeded: number;
  errors: number;
  errorKinds: Record<string, number>;
  elapsedSeconds: number;
  latenciesMs: number[];
  /** Open loop only: from each call's scheduled start, so that a late start counts against it. */
  fromScheduleMs?: number[];
}

const emptyFigures = (): RunFigures => ({ sent: 0, succeeded: 0, errors: 0, errorKinds: {}, elapsedSeconds: 0, latenciesMs: [] });

async function outcome(call: Call, seq: number): Promise<string | null> {
  try {
    return await call(seq);
  } catch (err) {
    return `exception: ${(err as Error).message.slice(0, 80)}`;
  }
}

function count(figures: RunFigures, kind: string | null): void {
  if (kind === null) figures.succeeded++;
  else {
    figures.errors++;
    figures.errorKinds[kind] = (figures.errorKinds[kind] ?? 0) + 1;
  }
}

/**
 * Closed loop: `concurrency` lanes until `count` calls have started or `durationMs` has passed
 * (calls in flight then finish and count).
 */
export async function closedLoop(concurrency: number, limit: { count?: number; durationMs?: number }, call: Call): Promise<RunFigures> {
  const figures = emptyFigures();
  const started = performance.now();
  const deadline = limit.durationMs === undefined ? Infinity : started + limit.durationMs;
  let seq = 0;
  const lane = async () => {
    while ((limit.count === undefined || seq < limit.count) && performance.now() < deadline) {
      const mine = seq++;
      figures.sent++;
      const t0 = performance.now();
      const kind = await outcome(call, mine);
      figures.latenciesMs.push(performance.now() - t0);
      count(figures, kind);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  figures.elapsedSeconds = (performance.now() - started) / 1000;
  return figures;
}

/**
 * Open loop: call i is due at start + i/rate, for `durationMs`, and is started when due whether or
 * not earlier calls were answered (a timer that fires late starts every call already due). At most
 * `maxInFlight` calls wait at once; a due call beyond that is counted as an error ("overloaded"),
 * so that a server that falls behind cannot make the run unbounded. Calls in flight at the end finish and count.
 */
export async function openLoop(ratePerSecond: number, durationMs: number, maxInFlight: number, call: Call): Promise<RunFigures> {
  const figures: RunFigures = { ...emptyFigures(), fromScheduleMs: [] };
  const total = Math.floor((ratePerSecond * durationMs) / 1000);
  const started = performance.now();
  const inFlight = new Set<Promise<void>>();
  let seq = 0;
  while (seq < total) {
    const now = performance.now();
    for (; seq < total && started + (seq * 1000) / ratePerSecond <= now; seq++) {
      figures.sent++;
      if (inFlight.size >= maxInFlight) {
        count(figures, 'overloaded (not sent)');
        continue;
      }
      const due = started + (seq * 1000) / ratePerSecond;
      const t0 = performance.now();
      const one: Promise<void> = outcome(call, seq).then((kind) => {
        const end = performance.now();
        figures.latenciesMs.push(end - t0);
        figures.fromScheduleMs!.push(end - due);
        count(figures, kind);
        inFlight.delete(one);
      });
      inFlight.add(one);
    }
    if (seq < total) await new Promise((r) => setTimeout(r, Math.max(0, started + (seq * 1000) / ratePerSecond - performance.now())));
  }
  await Promise.all(inFlight);
  figures.elapsedSeconds = (performance.now() - started) / 1000;
  return figures;
}

/** A run's figures as printed: rate of successful calls, latency (from the schedule too, when open loop). */
export function summarise(path: string, run: RunFigures) {
  return {
    path,
    sent: run.sent,
    succeeded: run.succeeded,
    errors: run.errors,
    errorKinds: run.errorKinds,
    elapsedSeconds: round(run.elapsedSeconds, 3),
    perSecond: round(run.succeeded / run.elapsedSeconds, 1),
    latencyMs: latencySummary(run.fromScheduleMs ?? run.latenciesMs),
    ...(run.fromScheduleMs ? { latencyFromSendMs: latencySummary(run.latenciesMs) } : {}),
  };
}
