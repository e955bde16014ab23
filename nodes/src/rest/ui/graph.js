// The job graph: a layered layout (a vertex's layer is the longest path to it from a source)
// drawn as SVG. Deterministic: the same plan always gives the same picture.
import { esc, formatCount } from './format.js';

const BOX_WIDTH = 236;
const BOX_HEIGHT = 92;
const LAYER_GAP = 120; // room for the edge label between layers
const ROW_GAP = 34;
const PADDING = 20;
const NAME_LINE_CHARS = 26; // what fits in a box at the name's font size

/// Layers and positions for `nodes` ({id, inputs: [{id}]}) in plan order.
/// Inputs that name no node are ignored; a cycle (never produced by weir) is cut where met.
export function layout(nodes) {
  const byId = new Map(nodes.map((node, index) => [node.id, { node, index }]));
  const layer = new Map();
  const visiting = new Set();
  const layerOf = (id) => {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const inputs = (byId.get(id).node.inputs || []).filter((input) => byId.has(input.id));
    const value = inputs.length ? Math.max(...inputs.map((input) => layerOf(input.id) + 1)) : 0;
    visiting.delete(id);
    layer.set(id, value);
    return value;
  };
  nodes.forEach((node) => layerOf(node.id));
  const layers = [];
  for (const node of nodes) (layers[layer.get(node.id)] ||= []).push(node);
  // Within a layer: by the mean row of the inputs (fewer crossings), then plan order.
  const row = new Map();
  layers.forEach((members) => {
    const key = (node) => {
      const rows = (node.inputs || []).filter((input) => row.has(input.id)).map((input) => row.get(input.id));
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : -1;
    };
    members.sort((a, b) => key(a) - key(b) || byId.get(a.id).index - byId.get(b.id).index);
    members.forEach((node, index) => row.set(node.id, index));
  });
  const tallest = Math.max(1, ...layers.map((members) => members.length));
  const height = PADDING * 2 + tallest * BOX_HEIGHT + (tallest - 1) * ROW_GAP;
  const positions = new Map();
  layers.forEach((members, index) => {
    const span = members.length * BOX_HEIGHT + (members.length - 1) * ROW_GAP;
    const top = (height - span) / 2;
    members.forEach((node, position) => {
      positions.set(node.id, {
        x: PADDING + index * (BOX_WIDTH + LAYER_GAP),
        y: top + position * (BOX_HEIGHT + ROW_GAP),
        layer: index,
      });
    });
  });
  const width = PADDING * 2 + layers.length * BOX_WIDTH + Math.max(0, layers.length - 1) * LAYER_GAP;
  return { positions, width, height };
}

/// Splits a chain's name at its operators (`A -> B -> C`) into at most `max` lines that fit.
function nameLines(name, max) {
  const parts = name.split(' -> ');
  const lines = [];
  let line = '';
  for (const part of parts) {
    const next = line ? `${line} → ${part}` : part;
    if (line && next.length > NAME_LINE_CHARS) {
      lines.push(line);
      line = `→ ${part}`;
    } else {
      line = next;
    }
  }
  if (line) lines.push(line);
  const clip = (text) => (text.length > NAME_LINE_CHARS + 2 ? `${text.slice(0, NAME_LINE_CHARS + 1)}…` : text);
  if (lines.length > max) return [...lines.slice(0, max - 1), clip(`${lines[max - 1]} …`)].map(clip);
  return lines.map(clip);
}

const BACKPRESSURE_LABEL = { ok: 'OK', low: 'LOW', high: 'HIGH' };

/// SVG for `vertices` ({id, name, parallelism, status, backpressure?: {ratio, level},
/// records?: {in, out}}, inputs: [{id, ship_strategy}]), laid out by `layout`.
export function drawGraph(vertices, selectedId) {
  const { positions, width, height } = layout(vertices);
  const edges = [];
  for (const vertex of vertices) {
    const to = positions.get(vertex.id);
    for (const input of vertex.inputs || []) {
      const from = positions.get(input.id);
      if (!from) continue;
      const x1 = from.x + BOX_WIDTH;
      const y1 = from.y + BOX_HEIGHT / 2;
      const x2 = to.x;
      const y2 = to.y + BOX_HEIGHT / 2;
      const bend = Math.max(40, (x2 - x1) / 2);
      const label = input.ship_strategy || '';
      const labelWidth = label.length * 7 + 14;
      const mx = (x1 + x2) / 2;
      const my = (y1 + y2) / 2;
      const labelled = label
        ? `<rect x="${mx - labelWidth / 2}" y="${my - 10}" width="${labelWidth}" height="20" rx="10"/>
          <text x="${mx}" y="${my + 4}" text-anchor="middle">${esc(label)}</text>`
        : '';
      edges.push(`<g class="edge" data-from="${esc(input.id)}" data-to="${esc(vertex.id)}"
          data-ship-strategy="${esc(label)}">
        <path d="M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2 - 2},${y2}" marker-end="url(#arrow)"/>
        ${labelled}
      </g>`);
    }
  }
  const boxes = vertices.map((vertex) => {
    const { x, y } = positions.get(vertex.id);
    const lines = nameLines(vertex.name, 2);
    const status = vertex.status || 'UNKNOWN';
    const selected = vertex.id === selectedId ? ' selected' : '';
    const pressure = vertex.backpressure;
    const pressureBadge = pressure
      ? `<g class="backpressure bp-${pressure.level}" data-backpressure="${pressure.level}">
          <rect x="${x + BOX_WIDTH - 92}" y="${y + BOX_HEIGHT - 24}" width="82" height="16" rx="8"/>
          <text x="${x + BOX_WIDTH - 51}" y="${y + BOX_HEIGHT - 12.5}" text-anchor="middle"
            >BP ${BACKPRESSURE_LABEL[pressure.level]} ${Math.round(pressure.ratio * 100)}%</text>
        </g>`
      : '';
    const records = vertex.records
      ? `<text class="records" x="${x + 14}" y="${y + BOX_HEIGHT - 12}"
          >in ${formatCount(vertex.records.in)} · out ${formatCount(vertex.records.out)}</text>`
      : '';
    const names = lines.map(
      (line, index) => `<text class="name" x="${x + 14}" y="${y + 20 + index * 16}">${esc(line)}</text>`,
    );
    return `<g class="vertex state-${esc(status)}${selected}" tabindex="0" data-vertex-id="${esc(vertex.id)}"
        data-name="${esc(vertex.name)}" data-parallelism="${vertex.parallelism}" data-status="${esc(status)}">
      <title>${esc(vertex.name)}</title>
      <rect class="box" x="${x}" y="${y}" width="${BOX_WIDTH}" height="${BOX_HEIGHT}" rx="8"/>
      <rect class="stripe" x="${x}" y="${y}" width="6" height="${BOX_HEIGHT}" rx="3"/>
      ${names.join('')}
      <text class="meta" x="${x + 14}" y="${y + 58}"
        ><tspan class="status">${esc(status)}</tspan> · parallelism ${vertex.parallelism}</text>
      ${records}
      ${pressureBadge}
    </g>`;
  });
  return `<svg id="job-graph" class="graph" data-vertex-count="${vertices.length}" width="${width}" height="${height}"
      viewBox="0 0 ${width} ${height}" role="img" aria-label="Job graph">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
      orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>
    ${edges.join('')}
    ${boxes.join('')}
  </svg>`;
}
