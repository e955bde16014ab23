// weir's web UI: hash routing, the REST client (with the bearer token when the cluster asks for
// one) and the live-refresh loop. Pages are in pages.js, the job graph in graph.js.
import { renderPage, handleClick } from './pages.js';

const TOKEN_KEY = 'weir.token';
const REFRESH_DEFAULT_MS = 3000;

/// A non-2xx answer: its status and Flink's first error message.
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/// GET (or another method) `path`; the JSON body, or throws HttpError. A 401 opens the token
/// prompt once; the next refresh after the token is entered tries again.
export async function api(path, options = {}) {
  const headers = { Accept: 'application/json', ...(options.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (error) {
    throw new HttpError(0, `cannot reach the JobManager (${error.message})`);
  }
  if (response.status === 401) {
    if (token) sessionStorage.removeItem(TOKEN_KEY); // the stored one was refused
    askForToken();
    throw new HttpError(401, 'this cluster requires an access token');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && Array.isArray(body.errors) && body.errors.length ? body.errors[0] : response.statusText;
    throw new HttpError(response.status, message);
  }
  return body;
}

/// `api` that never throws: `{ value }` or `{ error }` (a panel shows the error instead).
export async function settle(promise) {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}

function askForToken() {
  const dialog = document.getElementById('token-dialog');
  if (!dialog.open) dialog.showModal();
}

const app = {
  refreshMs: REFRESH_DEFAULT_MS,
  features: { 'web-cancel': true },
  timer: null,
  generation: 0, // bumps on every render; a slower older render must not overwrite a newer one
  memory: new Map(), // per-page state kept across refreshes (selected vertex, last graph, samples)
};

/// The current route from the hash: `#/overview`, `#/jobs`, `#/jobs/<id>`, `#/taskmanagers[/<id>]`.
function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'jobs' && parts[1]) return { page: 'job', id: parts[1], nav: 'jobs' };
  if (parts[0] === 'jobs') return { page: 'jobs', nav: 'jobs' };
  if (parts[0] === 'taskmanagers') return { page: 'taskmanagers', id: parts[1] || null, nav: 'taskmanagers' };
  return { page: 'overview', nav: 'overview' };
}

/// What a page keeps across its refreshes, by route.
function memoryFor(current) {
  const key = `${current.page}/${current.id || ''}`;
  if (!app.memory.has(key)) app.memory.set(key, {});
  return app.memory.get(key);
}

export async function refresh() {
  clearTimeout(app.timer);
  const generation = ++app.generation;
  const current = route();
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.classList.toggle('active', link.dataset.nav === current.nav);
  }
  const container = document.getElementById('page');
  const context = {
    route: current,
    features: app.features,
    memory: memoryFor(current),
    isCurrent: () => generation === app.generation,
    show: (html) => {
      if (generation !== app.generation) return;
      // A refresh replaces the page: keep where the user had scrolled the graph and tables.
      const scrolled = [...container.querySelectorAll('.graph-wrap, .table-wrap')].map((box) => [
        box.scrollLeft,
        box.scrollTop,
      ]);
      container.innerHTML = html;
      container.querySelectorAll('.graph-wrap, .table-wrap').forEach((box, index) => {
        if (scrolled[index]) [box.scrollLeft, box.scrollTop] = scrolled[index];
      });
    },
  };
  const banner = document.getElementById('banner');
  const status = document.getElementById('refresh-status');
  try {
    await renderPage(context);
    if (generation !== app.generation) return;
    banner.hidden = true;
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    status.dataset.ok = 'true';
  } catch (error) {
    if (generation !== app.generation) return;
    banner.hidden = false;
    banner.textContent = error.message || String(error);
    status.textContent = 'Update failed';
    status.dataset.ok = 'false';
  }
  if (generation === app.generation) app.timer = setTimeout(refresh, app.refreshMs);
}

async function start() {
  document.getElementById('token-form').addEventListener('submit', () => {
    const token = document.getElementById('token-input').value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    refresh();
  });
  const page = document.getElementById('page');
  page.addEventListener('click', (event) => handleClick(event, { refresh, memory: memoryFor(route()) }));
  page.addEventListener('keydown', (event) => {
    // A focused graph vertex or linked row is chosen with Enter, as with a click.
    if (event.key === 'Enter' && event.target.closest('[data-vertex-id], tr[data-href]')) {
      handleClick(event, { refresh, memory: memoryFor(route()) });
    }
  });
  window.addEventListener('hashchange', refresh);
  const config = await settle(api('/config'));
  if (config.value) {
    const interval = Number(config.value['refresh-interval']);
    if (Number.isFinite(interval) && interval >= 500) app.refreshMs = interval;
    if (config.value.features) app.features = config.value.features;
    const version = config.value['flink-version'];
    if (version) document.querySelector('.brand').title = `weir ${version}`;
  }
  refresh();
}

start();
