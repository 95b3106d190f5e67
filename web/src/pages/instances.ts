import { INSTANCE_STATES } from '../../../entities/states';
import { type Table, call, rowsOf } from '../api';
import { formatCount, formatTime, formatValue, h, replaceChildren, setText, statusBadge } from '../dom';
import type { Page, PageContext } from './page';

/** The columns shown, each a getInstancesContent field (sortable by it). */
const COLUMNS: { field: string; title: string; num?: boolean; time?: boolean }[] = [
  { field: 'inst.InstanceID', title: 'ID', num: true },
  { field: 'inst.Name', title: 'Name' },
  { field: 'inst.Status', title: 'Status' },
  { field: 'inst.Endpoint', title: 'Endpoint' },
  { field: 'inst.RunningPod', title: 'Pod' },
  { field: 'img.Name', title: 'Image' },
  { field: 'inst.PublicIP', title: 'Public IP' },
  { field: 'inst.Load', title: 'Load', num: true },
  { field: 'inst.Jobs', title: 'Jobs', num: true },
  { field: 'inst.LastUpdate', title: 'Last update (UTC)', time: true },
];

/** The filters offered: getInstancesContent fields, exact values (comma-separated values are ORed). */
const FILTERS = [
  { field: 'inst.Status', title: 'Status' },
  { field: 'inst.Endpoint', title: 'Endpoint' },
  { field: 'img.Name', title: 'Image' },
  { field: 'inst.RunningPod', title: 'Pod' },
] as const;

const PAGE_SIZES = [25, 50, 100, 250];

/** The instances table: filters, sort and paging done by the API (GET /instances). */
export function instancesPage(ctx: PageContext): Page {
  const filters: Record<string, string> = {};
  for (const { field } of FILTERS) filters[field] = ctx.query.get(field) ?? '';
  let sort = ctx.query.get('sort') ?? 'inst.InstanceID:DESC';
  let size = PAGE_SIZES.includes(Number(ctx.query.get('size'))) ? Number(ctx.query.get('size')) : 50;
  let start = Math.max(0, Number(ctx.query.get('start')) || 0);
  let total = 0;

  // The state lives in the address, so a filtered view can be bookmarked; replaceState fires no navigation.
  const remember = () => {
    const query = new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), sort, size: String(size), start: String(start) });
    history.replaceState(null, '', `#/instances?${query}`);
  };

  const form = h('form', { class: 'filters', 'aria-label': 'Filters' });
  for (const { field, title } of FILTERS) {
    const input =
      field === 'inst.Status'
        ? h('select', { name: field }, h('option', { value: '' }, 'any'), ...INSTANCE_STATES.map((s) => h('option', { value: s, selected: filters[field] === s }, s)))
        : h('input', { name: field, type: 'search', value: filters[field], placeholder: 'any', size: 14 });
    const apply = () => {
      filters[field] = input.value.trim();
      start = 0;
      remember();
      ctx.refreshNow();
    };
    input.addEventListener('change', apply);
    form.append(h('label', {}, `${title} `, input));
  }
  form.addEventListener('submit', (event) => event.preventDefault());

  const sizeSelect = h('select', { name: 'size', 'aria-label': 'Rows per page' }, ...PAGE_SIZES.map((n) => h('option', { value: n, selected: n === size }, String(n))));
  sizeSelect.addEventListener('change', () => {
    size = Number(sizeSelect.value);
    start = 0;
    remember();
    ctx.refreshNow();
  });

  const headRow = h('tr', {});
  const renderHead = () => {
    const [sortField, sortDir] = sort.split(':');
    replaceChildren(
      headRow,
      ...COLUMNS.map(({ field, title, num }) => {
        const active = field === sortField;
        const button = h('button', { type: 'button', class: 'sort', 'data-field': field }, title, active ? (sortDir === 'ASC' ? ' ▲' : ' ▼') : '');
        button.addEventListener('click', () => {
          sort = `${field}:${active && sortDir === 'ASC' ? 'DESC' : 'ASC'}`;
          start = 0;
          remember();
          renderHead();
          ctx.refreshNow();
        });
        return h('th', { class: num ? 'num' : undefined, 'aria-sort': active ? (sortDir === 'ASC' ? 'ascending' : 'descending') : undefined }, button);
      }),
    );
  };
  renderHead();

  const body = h('tbody', { 'data-testid': 'instances-rows' });
  const range = h('span', { 'data-testid': 'instances-range' });
  const prev = h('button', { type: 'button' }, '‹ Previous');
  const next = h('button', { type: 'button' }, 'Next ›');
  prev.addEventListener('click', () => {
    start = Math.max(0, start - size);
    remember();
    ctx.refreshNow();
  });
  next.addEventListener('click', () => {
    if (start + size < total) start += size;
    remember();
    ctx.refreshNow();
  });

  const el = h(
    'div',
    { class: 'page instances' },
    h('h1', {}, 'Instances'),
    form,
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid' }, h('thead', {}, headRow), body)),
    h('div', { class: 'pager' }, prev, range, next, h('label', {}, 'Rows per page ', sizeSelect)),
  );

  async function refresh(): Promise<void> {
    const query: Record<string, string | number> = { sort, start, limit: size };
    for (const [field, value] of Object.entries(filters)) if (value) query[field] = value;
    const content = await call<Table>('/instances', { query });
    total = content.TotalRecords ?? content.Records.length;
    const rows = rowsOf(content);
    replaceChildren(
      body,
      ...(rows.length
        ? rows.map((row) =>
            h(
              'tr',
              { 'data-instance': String(row['inst.InstanceID']) },
              ...COLUMNS.map(({ field, num, time }) => {
                const value = row[field];
                if (field === 'inst.InstanceID' || field === 'inst.Name') return h('td', { class: num ? 'num' : undefined }, h('a', { href: `#/instances/${row['inst.InstanceID']}` }, formatValue(value)));
                if (field === 'inst.Status') return h('td', {}, statusBadge(value));
                return h('td', { class: num ? 'num' : undefined }, time ? formatTime(value) : formatValue(value));
              }),
            ),
          )
        : [h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'muted' }, 'No instance matches these filters.'))]),
    );
    setText(range, total ? `${formatCount(start + 1)}–${formatCount(start + rows.length)} of ${formatCount(total)}` : '0 of 0');
    prev.disabled = start === 0;
    next.disabled = start + size >= total;
  }

  return { el, refresh };
}
