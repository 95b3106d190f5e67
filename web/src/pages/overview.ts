import { INSTANCE_STATES } from '../../../entities/states';
import { type Counters, type Table, call, rowsOf } from '../api';
import { TimeChart } from '../charts';
import { formatCount, formatTime, h, replaceChildren, setText, statusBadge } from '../dom';
import type { Page, PageContext } from './page';

/** Spans and buckets offered for the running-instances plot: [label, seconds]. */
export const SPANS: [string, number][] = [
  ['1 hour', 3600],
  ['6 hours', 6 * 3600],
  ['24 hours', 86400],
  ['7 days', 7 * 86400],
  ['30 days', 30 * 86400],
  ['all', 0],
];
export const BUCKETS: [string, number][] = [
  ['5 min', 300],
  ['15 min', 900],
  ['1 hour', 3600],
  ['1 day', 86400],
];

const GROUPS = [
  { key: 'Endpoint', title: 'By endpoint', filter: 'inst.Endpoint' },
  { key: 'VMImageID', title: 'By image', filter: 'img.Name' },
  { key: 'RunningPod', title: 'By running pod', filter: 'inst.RunningPod' },
] as const;

const select = (name: string, options: [string, number][], value: number) =>
  h('select', { name, 'aria-label': name }, ...options.map(([label, seconds]) => h('option', { value: seconds, selected: seconds === value }, label)));

/** The fleet at a glance: counters by status and by endpoint, image and pod, and running instances over time. */
export function overviewPage(ctx: PageContext): Page {
  const cards = new Map<string, HTMLElement>();
  const statusCards = h('section', { class: 'cards', 'aria-label': 'Instances by status' });
  const total = h('strong', { 'data-testid': 'count-total' }, '…');
  statusCards.append(h('a', { class: 'card total', href: '#/instances' }, h('span', {}, 'All instances'), total));
  for (const status of INSTANCE_STATES) {
    const value = h('strong', { 'data-testid': `count-Status-${status}` }, '…');
    cards.set(status, value);
    statusCards.append(h('a', { class: `card card-${status.toLowerCase()}`, href: `#/instances?inst.Status=${status}` }, statusBadge(status), value));
  }

  const groupBodies = new Map<string, HTMLElement>();
  const groupTables = h(
    'section',
    { class: 'groups' },
    ...GROUPS.map(({ key, title }) => {
      const body = h('tbody', { 'data-testid': `group-${key}` });
      groupBodies.set(key, body);
      return h('div', { class: 'group' }, h('h3', {}, title), h('table', { class: 'compact' }, h('thead', {}, h('tr', {}, h('th', {}, key === 'VMImageID' ? 'Image' : key), h('th', { class: 'num' }, 'Instances'))), body));
    }),
  );

  let span = 86400;
  let bucket = 900;
  const spanSelect = select('span', SPANS, span);
  const bucketSelect = select('bucket', BUCKETS, bucket);
  const chart = new TimeChart('Running instances, stacked by endpoint', { stacked: true, integer: true, format: (v) => formatCount(Math.round(v)) });
  const dataBody = h('tbody', { 'data-testid': 'running-data' });
  const running = h(
    'section',
    { class: 'panel' },
    h('div', { class: 'toolbar' }, h('h2', {}, 'Running instances over time'), h('label', {}, 'Span ', spanSelect), h('label', {}, 'Bucket ', bucketSelect)),
    chart.el,
    h('details', {}, h('summary', {}, 'Data'), h('table', { class: 'compact' }, h('thead', {}, h('tr', {}, h('th', {}, 'Bucket start (UTC)'), h('th', {}, 'Endpoint'), h('th', { class: 'num' }, 'Running'))), dataBody)),
  );

  const el = h('div', { class: 'page overview' }, h('h1', {}, 'Fleet overview'), statusCards, groupTables, running);

  async function refresh(): Promise<void> {
    const [byStatus, images, history, ...groups] = await Promise.all([
      call<Counters>('/instances/counters', { query: { groupBy: 'Status' } }),
      call<Table>('/images'),
      call<{ Records: [number, string, number][] }>('/history/running', { query: { timespan: span, bucketSize: bucket, groupBy: 'endpoint' } }),
      ...GROUPS.map(({ key }) => call<Counters>('/instances/counters', { query: { groupBy: key } })),
    ]);
    setText(total, formatCount(Object.values(byStatus).reduce((a, b) => a + b, 0)));
    for (const [status, value] of cards) setText(value, formatCount(byStatus[status] ?? 0));

    const imageNames = new Map(rowsOf(images).map((row) => [String(row.VMImageID), String(row.Name)]));
    GROUPS.forEach(({ key, filter }, i) => {
      const entries = Object.entries(groups[i]).sort(([a], [b]) => a.localeCompare(b));
      const rows = entries.map(([value, count]) => {
        const label = key === 'VMImageID' ? (imageNames.get(value) ?? `image ${value}`) : value;
        return h('tr', { 'data-value': label }, h('td', {}, h('a', { href: `#/instances?${new URLSearchParams({ [filter]: label })}` }, label || '—')), h('td', { class: 'num' }, formatCount(count)));
      });
      replaceChildren(groupBodies.get(key)!, ...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 2, class: 'muted' }, 'No instances'))]));
    });

    const times = [...new Set(history.Records.map(([t]) => t))].sort((a, b) => a - b);
    const endpoints = [...new Set(history.Records.map(([, e]) => e))].sort();
    const at = new Map(history.Records.map(([t, e, n]) => [`${t}\u0000${e}`, n]));
    chart.update(
      times,
      endpoints.map((e) => ({ label: e, values: times.map((t) => at.get(`${t}\u0000${e}`) ?? 0) })),
      // The whole span asked for, so that quiet hours show as such rather than being cut off.
      span > 0 ? [Math.floor(Date.now() / 1000) - span, Math.floor(Date.now() / 1000)] : null,
    );
    replaceChildren(dataBody, ...history.Records.map(([t, e, n]) => h('tr', {}, h('td', {}, formatTime(t * 1000)), h('td', {}, e), h('td', { class: 'num' }, formatCount(n)))));
  }

  spanSelect.addEventListener('change', () => {
    span = Number(spanSelect.value);
    ctx.refreshNow();
  });
  bucketSelect.addEventListener('change', () => {
    bucket = Number(bucketSelect.value);
    ctx.refreshNow();
  });

  return { el, refresh, dispose: () => chart.destroy() };
}
