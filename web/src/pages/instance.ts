import { type AuditEntry, type InstanceDetail, type StopResult, type Table, call, rowsOf } from '../api';
import { TimeChart } from '../charts';
import { formatBytes, formatCount, formatTime, formatValue, h, replaceChildren, setText, statusBadge } from '../dom';
import type { Page, PageContext } from './page';

/** The life cycle stops an instance in any of these (Running drains; a starting one is stopped at once); the API decides anyway. */
export const STOPPABLE = ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running', 'Stalled'];

const FIELDS: [string, string, (v: unknown) => string][] = [
  ['InstanceID', 'InstanceID', formatValue],
  ['Name', 'Name', formatValue],
  ['UniqueID', 'UniqueID', formatValue],
  ['Endpoint', 'Endpoint', formatValue],
  ['RunningPod', 'Running pod', formatValue],
  ['PublicIP', 'Public IP', formatValue],
  ['PrivateIP', 'Private IP', formatValue],
  ['Load', 'Load', formatValue],
  ['Jobs', 'Jobs', formatValue],
  ['Uptime', 'Uptime (s)', formatValue],
  ['LastUpdate', 'Last update (UTC)', formatTime],
  ['ErrorMessage', 'Error', formatValue],
];

/** The latest operator actions on the instance the page lists. */
const AUDIT_SHOWN = 20;

/** One instance: its state, IPs, workflow link, history plots and the stop button. */
export function instancePage(ctx: PageContext, instanceID: number): Page {
  const title = h('h1', {}, `Instance ${instanceID}`);
  const status = h('span', { 'data-testid': 'instance-status' });
  const values = new Map<string, HTMLElement>();
  const facts = h('dl', { class: 'facts' });
  for (const [key, label] of FIELDS) {
    const dd = h('dd', { 'data-testid': `field-${key}` }, '…');
    values.set(key, dd);
    facts.append(h('dt', {}, label), dd);
  }
  const image = h('dd', { 'data-testid': 'field-Image' }, '…');
  facts.append(h('dt', {}, 'Image'), image);
  const workflow = h('dd', { 'data-testid': 'field-Workflow' }, '…');
  facts.append(h('dt', {}, 'Workflow'), workflow);
  const shutdown = h('dd', { 'data-testid': 'field-ShutdownAt' }, '…');
  facts.append(h('dt', {}, 'Planned shutdown (UTC)'), shutdown);
  const haltPending = h('dd', { 'data-testid': 'field-HaltPending' }, '…');
  facts.append(h('dt', {}, 'Halt pending'), haltPending);

  const stopNote = h('span', { class: 'muted', 'data-testid': 'stop-note', 'aria-live': 'polite' });
  const stopButton = h('button', { type: 'button', class: 'danger', 'data-testid': 'stop', hidden: true }, 'Stop instance');
  const confirmText = h('p', {});
  const confirmYes = h('button', { type: 'submit', value: 'stop', class: 'danger', 'data-testid': 'confirm-stop' }, 'Stop it');
  const confirmNo = h('button', { type: 'submit', value: 'cancel', 'data-testid': 'cancel-stop', autofocus: true }, 'Cancel');
  const dialog = h('dialog', { 'aria-label': 'Confirm stop' }, h('form', { method: 'dialog' }, confirmText, h('div', { class: 'buttons' }, confirmNo, confirmYes)));
  let current: InstanceDetail | undefined;

  stopButton.addEventListener('click', () => {
    const name = current?.Instance.Name ? ` (${String(current.Instance.Name)})` : '';
    confirmText.textContent = `Stop instance ${instanceID}${name}? A Running instance is told to drain and stop; a starting or Stalled one is stopped at its endpoint and halted.`;
    dialog.showModal();
  });
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'stop') return;
    stopButton.disabled = true;
    setText(stopNote, 'Stopping…');
    try {
      const answer = await call<{ results: Record<string, StopResult> }>('/instances/stop', { method: 'POST', body: { instanceIDs: [instanceID] } });
      const result = answer.results[String(instanceID)];
      setText(stopNote, result?.OK ? `Stop requested: now ${result.Value ?? 'stopping'}` : `Not stopped: ${result?.Message ?? 'no answer'}`);
    } catch (err) {
      setText(stopNote, `Not stopped: ${(err as Error).message}`);
    } finally {
      stopButton.disabled = false;
      ctx.refreshNow();
    }
  });

  const charts = {
    load: new TimeChart('Load', { format: (v) => v.toFixed(2) }),
    jobs: new TimeChart('Jobs', { integer: true, format: (v) => formatCount(Math.round(v)) }),
    files: new TimeChart('Transferred files', { integer: true, format: (v) => formatCount(Math.round(v)) }),
    bytes: new TimeChart('Transferred bytes', { integer: true, format: formatBytes }),
  };
  const states = h('tbody', { 'data-testid': 'state-changes' });
  const actions = h('tbody', { 'data-testid': 'audit-entries' });

  const el = h(
    'div',
    { class: 'page instance' },
    h('p', {}, h('a', { href: '#/instances' }, '‹ Instances')),
    h('div', { class: 'toolbar' }, title, status, stopButton, stopNote),
    dialog,
    h('section', { class: 'panel' }, facts),
    h('section', { class: 'chart-grid' }, ...Object.values(charts).map((c) => c.el)),
    h('section', { class: 'panel' }, h('h2', {}, 'State changes'), h('table', { class: 'compact' }, h('thead', {}, h('tr', {}, h('th', {}, 'When (UTC)'), h('th', {}, 'Status'))), states)),
    h(
      'section',
      { class: 'panel' },
      h('h2', {}, 'Operator actions'),
      h('table', { class: 'compact' }, h('thead', {}, h('tr', {}, ...['When (UTC)', 'Operator', 'Action', 'Outcome', 'Detail'].map((t) => h('th', {}, t)))), actions),
    ),
  );

  async function refresh(): Promise<void> {
    const [detail, historyTable, audit] = await Promise.all([
      call<InstanceDetail>(`/instances/${instanceID}`),
      call<Table>(`/instances/${instanceID}/history`),
      call<{ entries: AuditEntry[] }>('/audit', { query: { instanceID, limit: AUDIT_SHOWN } }),
    ]);
    current = detail;
    const inst = detail.Instance;
    setText(title, `Instance ${instanceID}${inst.Name ? ` · ${String(inst.Name)}` : ''}`);
    if (status.dataset.status !== String(inst.Status)) {
      status.dataset.status = String(inst.Status);
      replaceChildren(status, statusBadge(inst.Status));
    }
    for (const [key, , format] of FIELDS) setText(values.get(key)!, format(inst[key]));
    setText(image, formatValue(detail.Image.Name));
    const link = detail.Workflow?.UIUrl;
    if (detail.Workflow && workflow.dataset.id !== detail.Workflow.ID) {
      workflow.dataset.id = detail.Workflow.ID;
      replaceChildren(workflow, link ? h('a', { href: link, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'workflow-link' }, `${detail.Workflow.ID} in the Temporal UI`) : detail.Workflow.ID);
    }
    stopButton.hidden = !(ctx.me.mayOperate && STOPPABLE.includes(String(inst.Status)));
    const life = detail.Life;
    setText(shutdown, life?.ShutdownAt ? formatTime(life.ShutdownAt) : '—');
    // The endpoint keeps refusing to stop the VM: the workflow retries, the operator should know.
    setText(haltPending, life?.HaltPendingSince ? `since ${formatTime(life.HaltPendingSince)}: ${life.HaltPendingReason}` : 'no');
    haltPending.classList.toggle('alert', Boolean(life?.HaltPendingSince));

    // The plot needs increasing times: rows of the same second (a state change and a heartbeat) count as the last of them.
    const bySecond = new Map<number, Record<string, unknown>>();
    for (const row of rowsOf(historyTable)) {
      const at = Math.floor(new Date(String(row.Update)).getTime() / 1000);
      if (Number.isFinite(at)) bySecond.set(at, row);
    }
    const times = [...bySecond.keys()].sort((a, b) => a - b);
    const rows = times.map((t) => bySecond.get(t)!);
    const series = (field: string) => rows.map((row) => (row[field] === null || row[field] === undefined ? null : Number(row[field])));
    charts.load.update(times, [{ label: 'load', values: series('Load') }]);
    charts.jobs.update(times, [{ label: 'jobs', values: series('Jobs') }]);
    charts.files.update(times, [{ label: 'files', values: series('TransferredFiles') }]);
    charts.bytes.update(times, [{ label: 'bytes', values: series('TransferredBytes') }]);

    // A row per change of status (heartbeats repeat the status; only the changes are listed).
    const changes = rowsOf(historyTable).filter((row, i, all) => i === 0 || row.Status !== all[i - 1].Status);
    replaceChildren(states, ...changes.reverse().map((row) => h('tr', {}, h('td', {}, formatTime(row.Update)), h('td', {}, statusBadge(row.Status)))));

    // Newest first, as the API answers; a failure shows the status and code the operator got.
    replaceChildren(
      actions,
      ...(audit.entries.length
        ? audit.entries.map((e) =>
            h(
              'tr',
              { 'data-outcome': e.outcome },
              h('td', {}, formatTime(e.at)),
              h('td', {}, e.operator),
              h('td', {}, e.action),
              h('td', {}, e.outcome === 'succeeded' ? 'succeeded' : `failed (${e.httpStatus}${e.error ? ` ${e.error}` : ''})`),
              h('td', {}, e.outcome === 'succeeded' ? e.detail : e.message),
            ),
          )
        : [h('tr', {}, h('td', { colspan: '5', class: 'muted' }, 'No operator action on record'))]),
    );
  }

  return { el, refresh, dispose: () => Object.values(charts).forEach((c) => c.destroy()) };
}
