import { call } from '../api';
import { TimeChart } from '../charts';
import { formatCount, formatTime, h, replaceChildren, setText } from '../dom';
import type { Page } from './page';

interface EndpointHealth {
  endpoint: string;
  paused: boolean;
  pauseReason: string;
  failures: number;
  lastReason: string;
  lastMessage: string;
  backoffUntil: string | null;
  demand: number | null;
  target: number | null;
  demandMessage: string;
  demandAt: string | null;
}

interface SafetyReply {
  mode: string;
  endpoints: EndpointHealth[];
  manual: { instanceID: number; reason: string; since: string | null }[];
  stallsHeld: string | null;
  guards: { scope: string; tripped: boolean; since: string | null }[];
}

interface UsageRow {
  day: string;
  endpoint: string;
  image: string;
  pod: string;
  vmHours: number;
  instances: number;
  cost?: number;
}

interface UsageReply {
  from: string;
  to: string;
  definition: string;
  rows: UsageRow[];
  totals: UsageRow[];
}

const USAGE_EVERY_MS = 60_000;

const row = (attrs: Record<string, string>, ...cells: (string | Node)[]) => h('tr', attrs, ...cells.map((cell) => h('td', {}, cell)));
const none = (columns: number, text: string) => h('tr', {}, h('td', { colspan: columns, class: 'muted' }, text));

/** What the Director does at an endpoint now, and why. */
function endpointState(e: EndpointHealth, now: number): [string, string] {
  if (e.paused) return ['paused', e.pauseReason || 'by an operator'];
  if (e.backoffUntil && Date.parse(e.backoffUntil) > now) {
    const why = e.lastReason === 'idle' && e.failures === 0 ? e.lastMessage : `${e.failures} failed creation(s), last ${e.lastReason}: ${e.lastMessage}`;
    return ['backing off', `until ${formatTime(e.backoffUntil)}: ${why}`];
  }
  return ['launching', ''];
}

/** The fleet's safety and Director state, and its VM-hours. */
export function fleetPage(): Page {
  const mode = h('strong', { 'data-testid': 'fleet-mode' }, '…');
  const alerts = h('ul', { class: 'alerts', 'data-testid': 'safety-alerts' });
  const endpoints = h('tbody', { 'data-testid': 'endpoint-state' });
  const manual = h('tbody', { 'data-testid': 'manual-instances' });
  const usageBody = h('tbody', { 'data-testid': 'usage-totals' });
  const usageDays = h('tbody', { 'data-testid': 'usage-days' });
  const usageSpan = h('span', { class: 'muted', 'data-testid': 'usage-span' });
  const definition = h('p', { class: 'muted' });
  const chart = new TimeChart('VM-hours per day, stacked by endpoint', { stacked: true, format: (v) => v.toFixed(1) });

  const th = (...titles: string[]) => h('thead', {}, h('tr', {}, ...titles.map((t) => h('th', {}, t))));
  const el = h(
    'div',
    { class: 'page fleet' },
    h('h1', {}, 'Fleet control'),
    h('section', { class: 'panel', 'aria-label': 'Safety' }, h('h2', {}, 'Safety'), h('p', {}, 'Fleet mode: ', mode), alerts),
    h(
      'section',
      { class: 'panel', 'aria-label': 'Director' },
      h('h2', {}, 'Director, per endpoint'),
      h('table', { class: 'compact' }, th('Endpoint', 'State', 'Why', 'Waiting jobs', 'Target', 'Demand read (UTC)'), endpoints),
      h('p', { class: 'muted' }, 'Endpoints without a pause, a backoff, a failure or a demand source on record fill up to their maxInstances.'),
    ),
    h('section', { class: 'panel', 'aria-label': 'Manual control' }, h('h2', {}, 'Instances under manual control'), h('table', { class: 'compact' }, th('Instance', 'Reason', 'Since (UTC)'), manual)),
    h(
      'section',
      { class: 'panel', 'aria-label': 'VM-hours' },
      h('div', { class: 'toolbar' }, h('h2', {}, 'VM-hours, last 7 days'), usageSpan),
      chart.el,
      h('table', { class: 'compact' }, th('Endpoint', 'Image', 'Pod', 'VM-hours', 'Cost'), usageBody),
      h('details', {}, h('summary', {}, 'Per day'), h('table', { class: 'compact' }, th('Day (UTC)', 'Endpoint', 'Image', 'Pod', 'VM-hours', 'Instances', 'Cost'), usageDays)),
      definition,
    ),
  );

  const cost = (value: number | undefined) => (value === undefined ? '—' : value.toFixed(2));

  // VM-hours change slowly and cost a scan of the recent history: asked for at most once a minute.
  let usageAt = 0;

  async function refresh(): Promise<void> {
    const stale = Date.now() - usageAt >= USAGE_EVERY_MS;
    const [safety, fresh] = await Promise.all([call<SafetyReply>('/safety'), stale ? call<UsageReply>('/usage') : Promise.resolve(undefined)]);
    showSafety(safety);
    if (fresh) {
      usageAt = Date.now();
      showUsage(fresh);
    }
  }

  function showSafety(safety: SafetyReply): void {
    const now = Date.now();
    setText(mode, safety.mode);
    const notes: [string, string][] = [];
    if (safety.mode !== 'normal') notes.push(['mode', `Fleet mode ${safety.mode}: the Director launches nothing${safety.mode === 'no-launch' ? '' : ` and ${safety.mode}s the live instances`}.`]);
    if (safety.stallsHeld) notes.push(['stalls', `Stalls held: ${safety.stallsHeld}`]);
    for (const g of safety.guards.filter((g) => g.tripped)) notes.push(['guard', `Guard tripped for ${g.scope} since ${formatTime(g.since)}: too many Running instances are silent; their stalls and halts are held.`]);
    for (const e of safety.endpoints) {
      const [state, why] = endpointState(e, now);
      if (state !== 'launching') notes.push(['endpoint', `${e.endpoint} ${state}: ${why}`]);
      if (e.demandMessage) notes.push(['demand', `${e.endpoint}: demand source failed: ${e.demandMessage}`]);
    }
    replaceChildren(alerts, ...(notes.length ? notes.map(([kind, text]) => h('li', { 'data-kind': kind }, text)) : [h('li', { class: 'muted', 'data-kind': 'none' }, 'No alerts: stalls are not held, no endpoint is paused or backing off.')]));

    replaceChildren(
      endpoints,
      ...(safety.endpoints.length
        ? safety.endpoints.map((e) => {
            const [state, why] = endpointState(e, now);
            return row({ 'data-endpoint': e.endpoint, 'data-state': state }, e.endpoint, state, why || '—', e.demand === null ? (e.demandAt ? 'unknown' : '—') : formatCount(e.demand), e.target === null ? '—' : formatCount(e.target), e.demandAt ? formatTime(e.demandAt) : '—');
          })
        : [none(6, 'No endpoint on record')]),
    );
    replaceChildren(manual, ...(safety.manual.length ? safety.manual.map((m) => row({}, h('a', { href: `#/instances/${m.instanceID}` }, String(m.instanceID)), m.reason || '—', formatTime(m.since))) : [none(3, 'None')]));
  }

  function showUsage(usage: UsageReply): void {

    setText(usageSpan, `${usage.from} to ${usage.to} (UTC)`);
    setText(definition, usage.definition);
    replaceChildren(
      usageBody,
      ...(usage.totals.length
        ? usage.totals.map((t) => row({ 'data-endpoint': t.endpoint, 'data-image': t.image, 'data-pod': t.pod }, t.endpoint, t.image, t.pod, t.vmHours.toFixed(2), cost(t.cost)))
        : [none(5, 'No VM-hours in this span')]),
    );
    replaceChildren(usageDays, ...usage.rows.map((r) => row({}, r.day, r.endpoint, r.image, r.pod, r.vmHours.toFixed(2), formatCount(r.instances), cost(r.cost))));
    const days = [...new Set(usage.rows.map((r) => Date.parse(`${r.day}T00:00:00Z`) / 1000))].sort((a, b) => a - b);
    const names = [...new Set(usage.rows.map((r) => r.endpoint))].sort();
    chart.update(
      days,
      names.map((endpoint) => ({ label: endpoint, values: days.map((d) => usage.rows.filter((r) => r.endpoint === endpoint && Date.parse(`${r.day}T00:00:00Z`) / 1000 === d).reduce((sum, r) => sum + r.vmHours, 0)) })),
      null,
    );
  }

  return { el, refresh, dispose: () => chart.destroy() };
}
