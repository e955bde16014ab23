// Formatting shared by the pages and the graph: escaping, times, durations, sizes, counts.

/// Text made safe for HTML and SVG (element content and quoted attributes).
export function esc(value) {
  return String(value ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );
}

/// Flink's times are ms since the epoch, -1 or 0 for "not yet".
export function formatTime(ms) {
  if (typeof ms !== 'number' || ms <= 0) return '–';
  const date = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function formatDuration(ms) {
  if (typeof ms !== 'number' || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  let seconds = Math.floor(ms / 1000);
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  seconds %= 60;
  if (days) return `${days}d ${hours}h ${minutes}m`;
  if (hours) return `${hours}h ${minutes}m ${seconds}s`;
  if (minutes) return `${minutes}m ${seconds}s`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

export function formatBytes(bytes) {
  if (typeof bytes !== 'number' || bytes < 0) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

export function formatCount(count) {
  if (typeof count !== 'number') return '–';
  if (count < 10000) return String(count);
  const units = [
    ['G', 1e9],
    ['M', 1e6],
    ['K', 1e3],
  ];
  const [suffix, size] = units.find(([, size]) => count >= size);
  return `${(count / size).toFixed(count / size < 100 ? 1 : 0)}${suffix}`;
}
