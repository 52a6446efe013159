// Agents: list, create, edit, make default, delete, and a test with the reply streamed live.
import { can, del, get, patch, post, stream } from "../api.js";
import { act, badge, button, fmtDate, form, h, notify, section, table } from "../ui.js";

const FIELDS = [
  { name: "name", label: "Name", required: true },
  { name: "description", label: "Description" },
  { name: "api_type", label: "API", type: "select", options: ["responses", "chat"] },
  { name: "model", label: "Model", placeholder: "gpt-4o-mini" },
  { name: "temperature", label: "Temperature", type: "number", step: "0.1" },
  { name: "max_output_tokens", label: "Max output tokens", type: "number" },
  { name: "prompt_id", label: "Prompt id" },
  { name: "prompt_version", label: "Prompt version" },
  { name: "vector_store_ids", label: "Vector store ids (comma separated)" },
  { name: "system_message", label: "System message", type: "textarea" },
  { name: "is_default", label: "Default agent", type: "checkbox" },
];

/** Form values → the API's body: numbers parsed, empty text means "not set". */
function toBody(values) {
  const body = {};
  for (const [key, value] of Object.entries(values)) {
    if (key === "is_default") body[key] = value;
    else if (key === "vector_store_ids") body[key] = value ? value.split(",").map((s) => s.trim()).filter(Boolean) : null;
    else if (key === "temperature" || key === "max_output_tokens") body[key] = value === "" ? null : Number(value);
    else body[key] = value === "" ? null : value;
  }
  return body;
}

export default async function agents(page) {
  if (page.params[0]) return agentDetail(page, page.params[0]);
  const list = (await get("/admin/agents", { limit: 100 })).data;
  const rows = table(
    [
      { label: "Name", value: (a) => h("span", {}, h("a", { href: `#/agents/${encodeURIComponent(a.id)}` }, a.name), " ", a.is_default ? badge("default") : null) },
      { label: "API", value: (a) => a.api_type },
      { label: "Model", value: (a) => a.model || "(config)" },
      { label: "Updated", value: (a) => fmtDate(a.updated_at) },
      {
        label: "Actions",
        value: (a) =>
          h(
            "div",
            { class: "actions" },
            can("update") ? button("Test", () => page.go(`#/agents/${encodeURIComponent(a.id)}`)) : null,
            can("update") && !a.is_default
              ? button("Make default", () => act(() => post(`/admin/agents/${a.id}/default`), `${a.name} is now the default`).then(page.refresh))
              : null,
            can("delete")
              ? button("Delete", () => confirm(`Delete agent ${a.name}?`) && act(() => del(`/admin/agents/${a.id}`), "Deleted").then(page.refresh), { class: "danger" })
              : null
          ),
      },
    ],
    list,
    "No agents yet: chats use the configured defaults."
  );
  return h(
    "div",
    {},
    section("Agents", rows),
    can("create")
      ? section(
          "New agent",
          form(FIELDS, "Create agent", async (values) => {
            const agent = (await post("/admin/agents", toBody(values))).data;
            notify(`Agent ${agent.name} created`);
            page.go(`#/agents/${encodeURIComponent(agent.id)}`);
          })
        )
      : null
  );
}

async function agentDetail(page, id) {
  const agent = (await get(`/admin/agents/${encodeURIComponent(id)}`)).data;
  const fields = FIELDS.map((f) => {
    const value = agent[f.name];
    return { ...f, value: Array.isArray(value) ? value.join(", ") : value };
  });
  return h(
    "div",
    {},
    h("p", {}, h("a", { href: "#/agents" }, "← All agents"), " ", agent.is_default ? badge("default") : null),
    can("update") ? testPanel(agent) : null,
    can("update")
      ? section(
          `Edit ${agent.name}`,
          form(fields, "Save", async (values) => {
            await patch(`/admin/agents/${agent.id}`, { ...toBody(values), version: agent.version });
            notify("Saved");
            page.refresh();
          })
        )
      : section(agent.name, h("pre", {}, JSON.stringify(agent, null, 2)))
  );
}

/** Sends one message to the agent and shows the reply as it streams; latencies go to the metrics page. */
function testPanel(agent) {
  const reply = h("div", { class: "reply", "aria-live": "polite", "data-testid": "agent-test-reply" });
  const status = h("p", { class: "muted" });
  const input = h("input", { type: "text", value: "Hello! Who are you?", "aria-label": "Test message", style: "flex:1" });
  const send = button("Send", run, { class: "primary" });
  async function run() {
    reply.textContent = "";
    status.textContent = "Streaming…";
    send.disabled = true;
    const started = performance.now();
    let firstToken = null;
    let outcome = "No reply.";
    try {
      await stream(`/admin/agents/${agent.id}/test`, { message: input.value }, (event, frame) => {
        if (event !== "message" || !frame) return;
        if (frame.type === "chunk") {
          firstToken ??= performance.now() - started;
          reply.textContent += frame.content || "";
        } else if (frame.type === "tool_call") reply.textContent += `\n[tool ${frame.tool_name}]\n`;
        else if (frame.type === "done") outcome = `Done (${frame.finish_reason || "completed"})`;
        else if (frame.type === "error") outcome = `Error: ${frame.message}`;
      });
      const total = performance.now() - started;
      recordLatency(firstToken, total);
      status.textContent = `${outcome} in ${Math.round(total)} ms${firstToken ? `, first token after ${Math.round(firstToken)} ms` : ""}.`;
    } catch (error) {
      status.textContent = `Error: ${error.message}`;
    } finally {
      send.disabled = false;
    }
  }
  return section(`Test ${agent.name}`, h("div", { class: "toolbar" }, input, send), reply, status);
}

function recordLatency(ttft, total) {
  const samples = JSON.parse(sessionStorage.getItem("chatbot-console:latency") || "[]");
  samples.push({ at: Date.now(), ttft: Math.round(ttft ?? total), total: Math.round(total) });
  sessionStorage.setItem("chatbot-console:latency", JSON.stringify(samples.slice(-50)));
}
