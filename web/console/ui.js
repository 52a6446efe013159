// Small DOM helpers: elements, tables, forms, notices and SVG charts. Text always goes in as text nodes.

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child != null && child !== false) node.append(child);
  return node;
}

export const button = (label, onclick, props = {}) => h("button", { type: "button", onclick, ...props }, label);

export function fmtDate(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${String(kind).replace(/[^a-z_-]/gi, "")}` }, String(text));
}

/** columns: [{label, value: row => node|string}] */
export function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { "data-label": c.label }, c.value(row) ?? "")))))
  );
}

/** fields: [{name, label, type?, options?, value?, required?, placeholder?}] → a <form>; onSubmit(values). */
export function form(fields, submitLabel, onSubmit) {
  const inputs = {};
  const el = h(
    "form",
    { class: "form" },
    fields.map((f) => {
      let input;
      if (f.type === "textarea") input = h("textarea", { name: f.name, rows: 4, placeholder: f.placeholder || "" });
      else if (f.type === "select") input = h("select", { name: f.name }, f.options.map((o) => h("option", { value: o }, o || "(any)")));
      else input = h("input", { name: f.name, type: f.type || "text", placeholder: f.placeholder || "", step: f.step });
      if (f.type === "checkbox") input.checked = !!f.value;
      else if (f.value != null) input.value = f.value;
      input.required = !!f.required;
      inputs[f.name] = input;
      return h("label", { class: f.type === "checkbox" ? "check" : "" }, h("span", {}, f.label), input);
    }),
    h("button", { type: "submit", class: "primary" }, submitLabel)
  );
  el.addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = {};
    for (const [name, input] of Object.entries(inputs)) values[name] = input.type === "checkbox" ? input.checked : input.value.trim();
    const submit = el.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      await onSubmit(values);
    } catch (error) {
      notify(error.message, "error");
    } finally {
      submit.disabled = false;
    }
  });
  return el;
}

/** Runs an action from a button; shows its error, or `done` when it succeeded. */
export async function act(action, done) {
  try {
    const result = await action();
    if (done) notify(done);
    return result;
  } catch (error) {
    notify(error.message, "error");
    return undefined;
  }
}

export function notify(message, kind = "ok") {
  const box = document.getElementById("notices");
  const note = h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

// --- charts (SVG) -------------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2"];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  children.forEach((c) => node.append(c));
  return node;
}

/** Bars for [{label, value}]. */
export function barChart(title, points) {
  const width = 480, height = 160, pad = 24;
  const max = Math.max(1, ...points.map((p) => p.value));
  const step = (width - pad) / Math.max(1, points.length);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 20}`, role: "img", "aria-label": title });
  points.forEach((p, i) => {
    const barHeight = (p.value / max) * (height - pad);
    const bar = svg("rect", { x: pad + i * step + 2, y: height - barHeight, width: Math.max(2, step - 4), height: barHeight, fill: COLOURS[0] });
    bar.append(svg("title", {}, `${p.label}: ${p.value}`));
    chart.append(bar);
    if (points.length <= 14) chart.append(svg("text", { x: pad + i * step + step / 2, y: height + 14, "text-anchor": "middle", "font-size": 10 }, p.label.slice(5)));
  });
  chart.append(svg("text", { x: 0, y: 12, "font-size": 10 }, String(max)));
  return h("figure", { class: "chart" }, h("figcaption", {}, title), chart);
}

/** Lines for {name: [numbers]} sampled at the same instants. */
export function lineChart(title, series) {
  const width = 480, height = 160, pad = 24;
  const all = Object.values(series).flat();
  const max = Math.max(1, ...all);
  const length = Math.max(2, ...Object.values(series).map((s) => s.length));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  const legend = h("div", { class: "legend" });
  Object.entries(series).forEach(([name, values], i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = values.map((v, x) => `${pad + (x * (width - pad)) / (length - 1)},${height - 4 - (v / max) * (height - pad)}`);
    chart.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
    legend.append(h("span", { style: `color:${colour}` }, `■ ${name} ${values.at(-1) ?? ""}`));
  });
  chart.append(svg("text", { x: 0, y: 12, "font-size": 10 }, String(max)));
  return h("figure", { class: "chart" }, h("figcaption", {}, title), chart, legend);
}

/** Re-renders `container` only when `data` changed, so a refresh does not close what the reader opened. */
export function renderIfChanged(container, data, render) {
  const key = JSON.stringify(data);
  if (container.dataset.key === key) return;
  container.dataset.key = key;
  container.replaceChildren(...[].concat(render()));
}
