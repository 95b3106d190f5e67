import { INSTANCE_STATES } from '../../../entities/states';
import { type InstancesTable, call, rowsOf } from '../api';
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
  // Paging: Next follows the API's cursor (as fast at any depth); Previous goes back through the
  // cursors of the pages seen. An address with `start` (a bookmark) opens at that offset once.
  let start = Math.max(0, Number(ctx.query.get('start')) || 0);
  let after: string | null = null;
  let next: string | null = null;
  /** The pages before this one, as they were reached: a cursor or an offset, and the first row's position. */
  let back: { after: string | null; start: number }[] = [];
  /** The position of this page's first row (0-based). */
  let position = start;
  let shown = 0;

  const firstPage = () => {
    start = 0;
    after = null;
    back = [];
    position = 0;
  };

  // The state lives in the address, so a filtered view can be bookmarked; replaceState fires no navigation.
  const remember = () => {
    const query = new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), sort, size: String(size), start: String(position) });
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
      firstPage();
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
    firstPage();
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
          firstPage();
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
  const nextButton = h('button', { type: 'button' }, 'Next ›');
  prev.addEventListener('click', () => {
    const previous = back.pop();
    if (previous) {
      ({ after, start } = previous);
      position = Math.max(0, position - size);
    } else {
      // Opened at an offset: the page before it, by offset.
      after = null;
      position = start = Math.max(0, position - size);
    }
    remember();
    ctx.refreshNow();
  });
  nextButton.addEventListener('click', () => {
    if (!next) return;
    back.push({ after, start });
    after = next;
    start = 0;
    position += shown;
    remember();
    ctx.refreshNow();
  });

  const el = h(
    'div',
    { class: 'page instances' },
    h('h1', {}, 'Instances'),
    form,
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid' }, h('thead', {}, headRow), body)),
    h('div', { class: 'pager' }, prev, range, nextButton, h('label', {}, 'Rows per page ', sizeSelect)),
  );

  async function refresh(): Promise<void> {
    const query: Record<string, string | number> = after ? { sort, after, limit: size } : { sort, start, limit: size };
    for (const [field, value] of Object.entries(filters)) if (value) query[field] = value;
    const content = await call<InstancesTable>('/instances', { query });
    const total = content.TotalRecords;
    next = content.Next;
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
    shown = rows.length;
    const of = content.TotalExact ? formatCount(total) : `about ${formatCount(total)}`;
    setText(range, rows.length ? `${formatCount(position + 1)}–${formatCount(position + rows.length)} of ${of}` : total ? `none here, of ${of}` : '0 of 0');
    prev.disabled = position === 0;
    nextButton.disabled = next === null;
  }

  return { el, refresh };
}
