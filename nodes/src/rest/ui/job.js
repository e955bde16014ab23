// The job page: the graph, vertices, subtasks of the selected vertex, exceptions and
// checkpoints. A panel whose endpoint answers 404 (an older JobManager, an ended job) says so in
// one line instead of failing the page.
import { api, settle, HttpError } from './app.js';
import { drawGraph } from './graph.js';
import { esc, formatTime, formatDuration, formatBytes, formatCount } from './format.js';
import { TERMINAL, badge, panel, unavailable, table, td, num, taskBar } from './html.js';

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

export async function renderJob(context) {
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
    // A job that has left the JobManager's archive of ended jobs has no vertices: show the
    // graph as last seen, each vertex in the job's final state unless it had ended on its own.
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
    : '<p class="muted">The job ended and has left the archive of recently ended jobs.</p>';
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
