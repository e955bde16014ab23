// The pages and their clicks: overview, job list and TaskManagers here, the job page in job.js.
// Each renders from the REST API; a panel whose endpoint answers 404 (an older JobManager) says
// so in one line instead of failing the page.
import { api, settle } from './app.js';
import { renderJob } from './job.js';
import { esc, formatTime, formatDuration, formatBytes } from './format.js';
import { TERMINAL, badge, panel, unavailable, table, td, num, taskBar } from './html.js';

export async function renderPage(context) {
  const pages = { overview: renderOverview, jobs: renderJobs, job: renderJob, taskmanagers: renderTaskManagers };
  await pages[context.route.page](context);
}

/// Clicks anywhere on the page: vertex selection (kept in the page's `memory`), cancel, table
/// rows that link.
export async function handleClick(event, { refresh, memory }) {
  const vertex = event.target.closest('[data-vertex-id]');
  if (vertex) {
    memory.selected = vertex.dataset.vertexId;
    refresh();
    return;
  }
  const cancel = event.target.closest('#cancel-job');
  if (cancel) {
    const jobId = cancel.dataset.jobId;
    if (!(await confirmCancel(cancel.dataset.jobName, jobId))) return;
    cancel.disabled = true;
    const result = await settle(api(`/jobs/${jobId}?mode=cancel`, { method: 'PATCH' }));
    if (result.error) alertBanner(`Cancel failed: ${result.error.message}`);
    refresh();
    return;
  }
  const summary = event.target.closest('details[data-key] > summary');
  if (summary) {
    // Remember which stack traces are open so that the next refresh keeps them open.
    const details = summary.parentElement;
    memory.open ||= new Set();
    if (details.open) memory.open.delete(details.dataset.key);
    else memory.open.add(details.dataset.key);
    return;
  }
  const row = event.target.closest('tr[data-href]');
  if (row && !event.target.closest('a')) location.hash = row.dataset.href;
}

function confirmCancel(name, jobId) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = `Cancel “${name}”?`;
  document.getElementById('confirm-text').textContent =
    `Job ${jobId} stops now; its output since the last checkpoint is not committed.`;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true }),
  );
}

function alertBanner(message) {
  const banner = document.getElementById('banner');
  banner.hidden = false;
  banner.textContent = message;
}

function jobRows(jobs) {
  return jobs.map(
    (job) => `<tr data-href="#/jobs/${esc(job.jid)}" class="link-row">
    <td><a href="#/jobs/${esc(job.jid)}">${esc(job.name)}</a><div class="id">${esc(job.jid)}</div></td>
    ${td(formatTime(job['start-time']))}${td(formatDuration(job.duration))}${td(formatTime(job['end-time']))}
    ${td(taskBar(job.tasks), 'tasks')}${td(badge(job.state))}</tr>`,
  );
}

const JOB_HEADERS = ['Job', 'Started', 'Duration', 'Ended', 'Tasks', 'Status'];

async function renderOverview(context) {
  const [overview, jobs] = await Promise.all([api('/overview'), settle(api('/jobs/overview'))]);
  const slotsTotal = overview['slots-total'] ?? 0;
  const slotsFree = overview['slots-available'] ?? 0;
  const used = slotsTotal ? Math.round(((slotsTotal - slotsFree) / slotsTotal) * 100) : 0;
  const card = (label, value, extra = '', state = '') =>
    `<div class="card${state ? ` card-state state-${state}` : ''}">
      <div class="label">${label}</div><div class="value">${value}</div>${extra}</div>`;
  const meter = `<div class="meter"><span style="width:${used}%"></span></div><div class="hint">${used}% in use</div>`;
  const cards = `<div class="cards">
    ${card('TaskManagers', overview.taskmanagers ?? 0)}
    ${card('Slots total', slotsTotal)}
    ${card('Slots free', slotsFree, meter)}
    ${card('Running jobs', overview['jobs-running'] ?? 0, '', 'RUNNING')}
    ${card('Finished', overview['jobs-finished'] ?? 0, '', 'FINISHED')}
    ${card('Canceled', overview['jobs-cancelled'] ?? 0, '', 'CANCELED')}
    ${card('Failed', overview['jobs-failed'] ?? 0, '', 'FAILED')}
  </div>`;
  let lists;
  if (jobs.error) {
    lists = panel('Jobs', unavailable('The job list', jobs.error));
  } else {
    const all = jobs.value.jobs || [];
    const running = all.filter((job) => !TERMINAL.has(job.state));
    const done = all.filter((job) => TERMINAL.has(job.state));
    lists =
      panel('Running jobs', table(JOB_HEADERS, jobRows(running), 'No job is running.')) +
      panel('Completed jobs', table(JOB_HEADERS, jobRows(done), 'No job has ended yet.'));
  }
  context.show(
    `<h1>Overview <span class="sub">weir ${esc(overview['flink-version'] || '')}</span></h1>${cards}${lists}`,
  );
}

async function renderJobs(context) {
  const jobs = await api('/jobs/overview');
  const rows = jobRows(jobs.jobs || []);
  const title = `All jobs <span class="count">${rows.length}</span>`;
  context.show(`<h1>Jobs</h1>${panel(title, table(JOB_HEADERS, rows, 'No job has been submitted.'))}`);
}

function slotGrid(total, free) {
  const used = Math.max(0, total - free);
  const cells = Array.from(
    { length: total },
    (_, index) => `<span class="slot${index < used ? ' used' : ''}"></span>`,
  ).join('');
  return `<span class="slots" title="${used} of ${total} slots in use">${cells}</span>`;
}

async function renderTaskManagers(context) {
  const selectedId = context.route.id;
  const [list, detail] = await Promise.all([
    api('/taskmanagers'),
    selectedId ? settle(api(`/taskmanagers/${encodeURIComponent(selectedId)}`)) : Promise.resolve(null),
  ]);
  const managers = list.taskmanagers || [];
  const rows = managers.map((manager) => {
    const link = `#/taskmanagers/${esc(manager.id)}`;
    const managedBytes = (manager.totalResource?.managedMemory ?? NaN) * 1024 * 1024;
    return `<tr data-href="${link}" class="link-row${manager.id === selectedId ? ' selected' : ''}">
      <td><a href="${link}">${esc(manager.id)}</a><div class="id">${esc(manager.path)}</div></td>
      ${num(manager.dataPort > 0 ? manager.dataPort : '–')}
      ${td(slotGrid(manager.slotsNumber ?? 0, manager.freeSlots ?? 0))}
      ${num(`${manager.freeSlots ?? '–'} / ${manager.slotsNumber ?? '–'}`)}${num(manager.assignedTasks ?? '–')}
      ${num(formatBytes(managedBytes))}${td(formatTime(manager.timeSinceLastHeartbeat))}</tr>`;
  });
  let detailPanel = '';
  if (detail) {
    detailPanel = panel(
      `TaskManager <span class="muted">${esc(selectedId)}</span>`,
      detail.error ? unavailable('Slot details', detail.error) : taskManagerDetail(detail.value),
    );
  }
  context.show(
    `<h1>TaskManagers</h1>${panel(
      `Registered <span class="count">${managers.length}</span>`,
      table(
        ['TaskManager', 'Data port', 'Slots', 'Free', 'Tasks', 'Managed memory', 'Last heartbeat'],
        rows,
        'No TaskManager has registered.',
      ),
    )}${detailPanel}`,
  );
}

function taskManagerDetail(manager) {
  const allocated = manager.allocatedSlots || [];
  const rows = allocated.map(
    (slot) => `<tr><td class="num">${slot.index ?? '–'}</td>
      <td>${slot.jobId ? `<a href="#/jobs/${esc(slot.jobId)}">${esc(slot.jobId)}</a>` : '–'}</td>
      <td>${esc((slot.tasks || []).map((task) => task.name ?? task).join(', ') || '–')}</td></tr>`,
  );
  const [slots, free, tasks] = [manager.slotsNumber ?? 0, manager.freeSlots ?? 0, manager.assignedTasks ?? 0];
  const counts = `${slots} slots, ${free} free, ${tasks} tasks`;
  return `<p class="muted">${counts}.</p>
    ${table(['Slot', 'Job', 'Tasks'], rows, 'No slot is allocated.')}`;
}
