// The pages: overview, job list, job (graph, vertices, subtasks, checkpoints, exceptions) and
// TaskManagers. Each renders from the REST API; a panel whose endpoint answers 404 (an older
// JobManager, an ended job) says so in one line instead of failing the page.
import { api, settle, HttpError } from './app.js';
import { drawGraph } from './graph.js';
import { esc, formatTime, formatDuration, formatBytes, formatCount } from './format.js';

const TERMINAL = new Set(['FINISHED', 'CANCELED', 'FAILED', 'SUSPENDED']);
const TASK_STATES = [
  'CREATED',
  'SCHEDULED',
  'DEPLOYING',
  'INITIALIZING',
  'RUNNING',
  'FINISHED',
  'CANCELING',
  'CANCELED',
  'FAILED',
  'RECONCILING',
];

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

function badge(state) {
  return `<span class="badge state-${esc(state)}">${esc(state)}</span>`;
}

function panel(title, body, extra = '') {
  return `<section class="panel"${extra}><h2>${title}</h2>${body}</section>`;
}

/// One line in place of a panel whose data cannot be had.
function unavailable(what, error) {
  const why =
    error instanceof HttpError && error.status === 404 ? 'not available from this JobManager' : esc(error.message);
  return `<p class="muted unavailable">${what}: ${why}.</p>`;
}

function table(headers, rows, empty) {
  if (!rows.length) return `<p class="muted">${empty}</p>`;
  const head = headers.map((header) => `<th>${header}</th>`).join('');
  return `<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

/// A table cell; `num` ones are right-aligned figures.
const td = (html, className = '') => `<td${className ? ` class="${className}"` : ''}>${html}</td>`;
const num = (html) => td(html, 'num');

/// A bar of a job's task counts by state.
function taskBar(tasks) {
  if (!tasks) return '–';
  const entries = TASK_STATES.map((state) => [state, tasks[state.toLowerCase()] ?? tasks[state] ?? 0]).filter(
    ([, count]) => count > 0,
  );
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  if (!total) return '<span class="muted">0</span>';
  const segments = entries
    .map(
      ([state, count]) =>
        `<span class="segment state-${state}" style="flex:${count}" title="${state}: ${count}"></span>`,
    )
    .join('');
  return `<span class="taskbar">${segments}</span><span class="taskcount">${total}</span>`;
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

/// Backpressure of a vertex as Flink shows it: the share of time spent backpressured, over the
/// last refresh when there is an earlier sample, else since the start. OK ≤ 10% < LOW ≤ 50% < HIGH.
function backpressure(metrics, previous) {
  const pressured = metrics?.['accumulated-backpressured-time'];
  const idle = metrics?.['accumulated-idle-time'];
  const busy = metrics?.['accumulated-busy-time'];
  if (![pressured, idle, busy].every((value) => typeof value === 'number')) return null;
  let [p, i, b] = [pressured, idle, busy];
  if (previous && pressured + idle + busy > previous.pressured + previous.idle + previous.busy) {
    [p, i, b] = [pressured - previous.pressured, idle - previous.idle, busy - previous.busy];
  }
  const total = p + i + b;
  if (total <= 0) return null;
  const ratio = Math.min(1, Math.max(0, p / total));
  return { ratio, level: ratio <= 0.1 ? 'ok' : ratio <= 0.5 ? 'low' : 'high', sample: { pressured, idle, busy } };
}

/// The graph's vertices from the job detail: the plan's nodes and edges with the vertices'
/// names, states and metrics.
function graphVertices(job, memory) {
  const details = new Map((job.vertices || []).map((vertex) => [vertex.id, vertex]));
  const samples = memory.samples || {};
  const next = {};
  const vertices = (job.plan?.nodes || []).map((node) => {
    const detail = details.get(node.id) || {};
    const name =
      detail.name ||
      String(node.description || node.id)
        .replace(/<br\/?>/g, ' ')
        .replace(/\+- /g, '-> ')
        .trim();
    const pressure = backpressure(detail.metrics, samples[node.id]);
    if (pressure) next[node.id] = pressure.sample;
    const records = detail.metrics
      ? { in: detail.metrics['read-records'], out: detail.metrics['write-records'] }
      : null;
    return {
      id: node.id,
      name,
      parallelism: detail.parallelism ?? node.parallelism,
      status: detail.status,
      inputs: node.inputs || [],
      backpressure: pressure,
      records,
    };
  });
  memory.samples = next;
  return vertices;
}

async function renderJob(context) {
  const jobId = context.route.id;
  const memory = context.memory;
  let job;
  try {
    job = await api(`/jobs/${encodeURIComponent(jobId)}`);
  } catch (error) {
    if (error instanceof HttpError && (error.status === 404 || error.status === 400)) {
      const body = `<p class="muted">${esc(error.message)}</p><p><a href="#/jobs">All jobs</a></p>`;
      context.show(`<h1>Job</h1>${panel('Not found', body)}`);
      return;
    }
    throw error;
  }
  let vertices = graphVertices(job, memory);
  let stale = false;
  if (vertices.length) {
    memory.graph = vertices;
  } else if (memory.graph) {
    // An ended job has no JobMaster and so no vertices: show the graph as last seen, each
    // vertex in the job's final state unless it had already ended on its own.
    vertices = memory.graph.map((vertex) => ({
      ...vertex,
      backpressure: null,
      status: TERMINAL.has(vertex.status) ? vertex.status : job.state,
    }));
    stale = true;
  }
  if (!vertices.some((vertex) => vertex.id === memory.selected)) {
    // A source first: the head of the pipeline is where a reader starts.
    memory.selected = (vertices.find((vertex) => !vertex.inputs.length) || vertices[0])?.id;
  }
  const selected = vertices.find((vertex) => vertex.id === memory.selected);
  const [checkpoints, exceptions, subtasks] = await Promise.all([
    settle(api(`/jobs/${jobId}/checkpoints`)),
    settle(api(`/jobs/${jobId}/exceptions`)),
    selected && !stale ? settle(api(`/jobs/${jobId}/vertices/${selected.id}`)) : Promise.resolve(null),
  ]);
  const running = !TERMINAL.has(job.state);
  const cancel =
    running && context.features['web-cancel'] !== false
      ? `<button id="cancel-job" class="danger" data-job-id="${esc(job.jid)}"
          data-job-name="${esc(job.name)}">Cancel job</button>`
      : '';
  const counts = Object.entries(job['status-counts'] || {})
    .filter(([, count]) => count > 0)
    .map(([state, count]) => `<span class="pill state-${esc(state)}">${esc(state)} ${count}</span>`)
    .join('');
  const header = `<div class="job-head">
      <div><h1>${esc(job.name)} <span id="job-state" class="badge state-${esc(job.state)}"
        data-state="${esc(job.state)}">${esc(job.state)}</span></h1>
      <div class="facts"><span class="id">${esc(job.jid)}</span><span>Started ${formatTime(job['start-time'])}</span>
      <span>Duration ${formatDuration(job.duration)}</span>
      ${job['end-time'] > 0 ? `<span>Ended ${formatTime(job['end-time'])}</span>` : ''}
      <span class="pills">${counts}</span></div></div>
      <div class="actions">${cancel}</div></div>
      ${job.failure ? `<div class="failure"><strong>Root cause:</strong> ${esc(job.failure)}</div>` : ''}`;
  const graph = vertices.length
    ? `${stale ? '<p class="muted">The job has ended; the graph is as last seen on this page.</p>' : ''}
       <div class="graph-wrap">${drawGraph(vertices, memory.selected)}</div>
       <div class="legend">Click a vertex for its subtasks. Edges are labelled with their partitioner.</div>`
    : '<p class="muted">The job has ended; weir keeps no graph for ended jobs.</p>';
  const subtasksTitle = `Subtasks${selected ? ` of <span class="muted">${esc(selected.name)}</span>` : ''}`;
  context.show(`${header}
    ${panel('Job graph', graph, ' id="graph-panel"')}
    ${panel('Vertices', vertexTable(job.vertices || []))}
    <div class="columns">
      ${panel(subtasksTitle, subtaskTable(subtasks, stale))}
      ${panel('Exceptions', exceptionList(exceptions, job, memory.open || new Set()))}
    </div>
    ${panel('Checkpoints', checkpointPanel(checkpoints))}`);
}

function vertexTable(vertices) {
  const rows = vertices.map((vertex) => {
    const metrics = vertex.metrics || {};
    return `<tr data-vertex-row="${esc(vertex.id)}">${td(esc(vertex.name))}${td(badge(vertex.status))}
      ${num(vertex.parallelism)}
      ${num(formatCount(metrics['read-records']))}${num(formatCount(metrics['write-records']))}
      ${num(formatBytes(metrics['read-bytes']))}${num(formatBytes(metrics['write-bytes']))}
      ${td(formatDuration(vertex.duration))}${td(taskBar(vertex.tasks), 'tasks')}</tr>`;
  });
  return table(
    ['Name', 'Status', 'Parallelism', 'Records in', 'Records out', 'Bytes in', 'Bytes out', 'Duration', 'Tasks'],
    rows,
    'No vertex is running.',
  );
}

function subtaskTable(result, stale) {
  if (stale) return '<p class="muted">The job has ended; its subtasks are gone.</p>';
  if (!result) return '<p class="muted">No vertex selected.</p>';
  if (result.error) return unavailable('Subtask details', result.error);
  const rows = (result.value.subtasks || []).map((subtask) => {
    const metrics = subtask.metrics || {};
    return `<tr>${num(subtask.subtask)}${td(badge(subtask.status))}${num(subtask.attempt ?? 0)}
      ${td(esc(subtask.endpoint || subtask.host || '–'))}${num(formatCount(metrics['read-records']))}
      ${num(formatCount(metrics['write-records']))}${td(formatDuration(subtask.duration))}</tr>`;
  });
  return table(['#', 'Status', 'Attempt', 'Host', 'Records in', 'Records out', 'Duration'], rows, 'No subtasks.');
}

function exceptionList(result, job, open) {
  if (result.error) {
    return (
      unavailable('Exception history', result.error) +
      (job.failure ? `<pre class="trace">${esc(job.failure)}</pre>` : '')
    );
  }
  const entries = result.value.exceptionHistory?.entries || [];
  if (!entries.length) return '<p class="muted">No exceptions.</p>';
  const items = entries.map((entry) => {
    const key = `${entry.timestamp}/${entry.exceptionName}/${entry.taskName || ''}`;
    const where = entry.taskName ? ` in ${esc(entry.taskName)}` : '';
    const host = entry.endpoint ? ` <span class="muted">at ${esc(entry.endpoint)}</span>` : '';
    return `<details class="exception" data-key="${esc(key)}"${open.has(key) ? ' open' : ''}>
      <summary><span class="when">${formatTime(entry.timestamp)}</span>
      <strong>${esc(entry.exceptionName || 'Exception')}</strong>${where}${host}</summary>
      <pre class="trace">${esc(entry.stacktrace || '')}</pre></details>`;
  });
  const truncated = result.value.exceptionHistory?.truncated;
  return items.join('') + (truncated ? '<p class="muted">Older exceptions were dropped.</p>' : '');
}

function checkpointPanel(result) {
  if (result.error) return unavailable('Checkpoint statistics', result.error);
  const stats = result.value;
  const counts = stats.counts || {};
  const stat = (key) =>
    `<div class="stat"><div class="label">${key.replace('_', ' ')}</div>
      <div class="value">${counts[key] ?? 0}</div></div>`;
  const summary = ['completed', 'failed', 'in_progress', 'restored'].map(stat).join('');
  const restored = stats.latest?.restored;
  const rows = (stats.history || []).map(
    (checkpoint) => `<tr>${num(checkpoint.id)}${td(badge(checkpoint.status))}
      ${td(formatTime(checkpoint.trigger_timestamp))}${td(formatDuration(checkpoint.end_to_end_duration))}
      ${num(formatBytes(checkpoint.checkpointed_size ?? checkpoint.state_size))}
      ${num(formatBytes(checkpoint.alignment_buffered))}${num(formatBytes(checkpoint.processed_data))}
      ${num(`${checkpoint.num_acknowledged_subtasks ?? '–'}/${checkpoint.num_subtasks ?? '–'}`)}
      ${td(esc(checkpoint.failure_message || (checkpoint.is_savepoint ? 'savepoint' : '')))}</tr>`,
  );
  const path = restored?.external_path ? ` (${esc(restored.external_path)})` : '';
  const restoredLine = restored
    ? `<p class="muted">Restored from checkpoint ${restored.id}
        at ${formatTime(restored.restore_timestamp)}${path}.</p>`
    : '';
  const headers = [
    'ID',
    'Status',
    'Triggered',
    'Duration',
    'Size',
    'Aligned (buffered)',
    'Processed data',
    'Acknowledged',
    '',
  ];
  return `<div class="stats">${summary}</div>${restoredLine}${table(headers, rows, 'No checkpoint yet.')}`;
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
