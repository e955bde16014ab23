// HTML pieces every page uses: state badges, panels, tables, the task bar. Values that come
// from the API go through `esc` before they reach markup.
import { HttpError } from './app.js';
import { esc } from './format.js';

export const TERMINAL = new Set(['FINISHED', 'CANCELED', 'FAILED', 'SUSPENDED']);
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

export function badge(state) {
  return `<span class="badge state-${esc(state)}">${esc(state)}</span>`;
}

export function panel(title, body, extra = '') {
  return `<section class="panel"${extra}><h2>${title}</h2>${body}</section>`;
}

/// One line in place of a panel whose data cannot be had.
export function unavailable(what, error) {
  const why =
    error instanceof HttpError && error.status === 404 ? 'not available from this JobManager' : esc(error.message);
  return `<p class="muted unavailable">${what}: ${why}.</p>`;
}

export function table(headers, rows, empty) {
  if (!rows.length) return `<p class="muted">${empty}</p>`;
  const head = headers.map((header) => `<th>${header}</th>`).join('');
  return `<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

/// A table cell; `num` ones are right-aligned figures.
export const td = (html, className = '') => `<td${className ? ` class="${className}"` : ''}>${html}</td>`;
export const num = (html) => td(html, 'num');

/// A bar of a job's task counts by state.
export function taskBar(tasks) {
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
