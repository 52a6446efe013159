// Health checks, and usage & metrics with small charts. Job counts and queue depths are sampled while the
// console is open (kept for this tab), since the admin API reports them as of now.
import { ApiError, can, get, post } from "../api.js";
import { badge, barChart, form, h, lineChart, notify, renderIfChanged, section, table } from "../ui.js";

async function healthReport() {
  try {
    return (await get("/admin/health")).data;
  } catch (error) {
    if (error instanceof ApiError && error.status === 503 && error.body?.data) return error.body.data; // unhealthy
    throw error;
  }
}

export async function health(page) {
  const view = h("div");
  async function refresh() {
    const report = await healthReport();
    renderIfChanged(view, report, () => [
      h("p", {}, "Overall: ", badge(report.status), ` at ${new Date(report.timestamp).toLocaleTimeString()}`),
      table(
        [
          { label: "Check", value: ([name]) => name },
          { label: "Status", value: ([, c]) => badge(c.status) },
          { label: "Message", value: ([, c]) => c.message || "" },
          { label: "Latency", value: ([, c]) => (c.latency_ms == null ? "" : `${c.latency_ms} ms`) },
          { label: "Details", value: ([, c]) => (c.details ? h("code", {}, JSON.stringify(c.details)) : "") },
        ],
        Object.entries(report.checks)
      ),
    ]);
  }
  await refresh();
  page.every(10000, () => refresh().catch(() => null));
  return section("Health", view);
}

// --- usage & metrics ------------------------------------------------------------------------------------

const SAMPLES = "chatbot-console:samples";
const STATUSES = ["queued", "running", "completed", "dead", "cancelled"];

function load(key) {
  return JSON.parse(sessionStorage.getItem(key) || "[]");
}

async function sample() {
  const [stats, report] = await Promise.all([get("/admin/jobs/stats"), healthReport()]);
  const samples = load(SAMPLES);
  samples.push({ at: Date.now(), ...Object.fromEntries(STATUSES.map((s) => [s, stats.data[s]])), queue: report.metrics.queue_depth ?? 0, dlq: report.metrics.dlq_depth ?? 0 });
  sessionStorage.setItem(SAMPLES, JSON.stringify(samples.slice(-60)));
  return samples;
}

const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);

export async function metrics(page) {
  const [from, to] = [page.params[0] || day(-13), page.params[1] || day(0)];
  const usage = (await get("/admin/usage", { day_from: from, day_to: to })).data;
  const perDay = {};
  for (let d = new Date(from); d <= new Date(to); d.setUTCDate(d.getUTCDate() + 1)) perDay[d.toISOString().slice(0, 10)] = 0;
  const perAgent = {};
  for (const row of usage.rows) {
    perDay[row.day] = (perDay[row.day] || 0) + row.total_tokens;
    const agent = (perAgent[row.agent_id] ??= { agent: row.agent_id, requests: 0, errors: 0, tokens: 0 });
    agent.requests += row.requests;
    agent.errors += row.errors;
    agent.tokens += row.total_tokens;
  }
  const charts = h("div", { class: "grid" });
  const drawSamples = (samples) => {
    const latency = load("chatbot-console:latency");
    charts.replaceChildren(
      lineChart("Jobs per status (sampled every 10 s)", Object.fromEntries(STATUSES.map((s) => [s, samples.map((x) => x[s])]))),
      lineChart("Queue depth", { jobs: samples.map((x) => x.queue), "dead letters": samples.map((x) => x.dlq) }),
      latency.length
        ? lineChart("Chat latency of agent tests, ms", { "first token": latency.map((x) => x.ttft), total: latency.map((x) => x.total) })
        : h("p", { class: "muted" }, "Chat latency: run an agent test to measure it (CloudWatch has chatbot_chat_latency_ms for all chats).")
    );
  };
  drawSamples(await sample());
  page.every(10000, () => sample().then(drawSamples).catch(() => null));
  const t = usage.totals;
  return h(
    "div",
    {},
    section(
      "Usage",
      form(
        [
          { name: "from", label: "From", type: "date", value: from },
          { name: "to", label: "To", type: "date", value: to },
        ],
        "Show",
        async (values) => page.go(`#/metrics/${values.from}/${values.to}`)
      ),
      h("p", {}, `${t.requests} requests, ${t.errors} errors, ${t.input_tokens} input + ${t.output_tokens} output = ${t.total_tokens} tokens.`),
      h("div", { class: "grid" }, barChart("Tokens per day", Object.entries(perDay).map(([label, value]) => ({ label, value }))),
        table(
          [
            { label: "Agent", value: (r) => r.agent },
            { label: "Requests", value: (r) => String(r.requests) },
            { label: "Errors", value: (r) => String(r.errors) },
            { label: "Tokens", value: (r) => String(r.tokens) },
          ],
          Object.values(perAgent),
          "No usage in this period."
        ))
    ),
    section("Metrics", charts),
    await quotas(page)
  );
}

async function quotas(page) {
  const list = (await get("/admin/quotas")).data.items;
  return section(
    "Daily token quotas",
    table(
      [
        { label: "Scope", value: (q) => q.scope },
        { label: "Id", value: (q) => q.id },
        { label: "Daily tokens", value: (q) => (q.daily_tokens == null ? "unlimited" : String(q.daily_tokens)) },
      ],
      list,
      "No quotas set."
    ),
    can("update")
      ? form(
          [
            { name: "scope", label: "Scope", type: "select", options: ["agent", "key"] },
            { name: "id", label: "Agent or key id", required: true },
            { name: "daily_tokens", label: "Daily tokens (empty: unlimited)", type: "number" },
          ],
          "Set quota",
          async (values) => {
            await post("/admin/quotas", { scope: values.scope, id: values.id, daily_tokens: values.daily_tokens === "" ? null : Number(values.daily_tokens) });
            notify("Quota set");
            page.refresh();
          }
        )
      : null
  );
}
