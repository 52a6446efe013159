// Audit log with filters; older entries page in with "Load more".
import { get } from "../api.js";
import { badge, button, fmtDate, form, h, section, table } from "../ui.js";

const COLUMNS = [
  { label: "When", value: (e) => fmtDate(e.timestamp) },
  { label: "Actor", value: (e) => e.actor_email || e.actor },
  { label: "Action", value: (e) => h("code", {}, e.action) },
  { label: "Resource", value: (e) => `${e.resource_type || ""} ${e.resource_id || ""}` },
  { label: "Outcome", value: (e) => badge(e.outcome, e.outcome === "success" ? "ok" : "error") },
  { label: "IP", value: (e) => e.source_ip || "" },
];

export default async function audit(page) {
  const filters = Object.fromEntries(new URLSearchParams(page.params[0] || ""));
  const entries = [];
  const list = h("div");
  const more = h("div");
  async function load(cursor) {
    const result = await get("/admin/audit-log", { ...filters, limit: 50, cursor });
    entries.push(...result.data);
    list.replaceChildren(table(COLUMNS, entries, "No entries match."));
    more.replaceChildren(result.next_cursor ? button("Load more", () => load(result.next_cursor)) : "");
  }
  await load(null);
  const filterForm = form(
    [
      { name: "actor", label: "Actor (user id)", value: filters.actor },
      { name: "action", label: "Action", value: filters.action, placeholder: "agent.create" },
      { name: "resource_type", label: "Resource type", value: filters.resource_type, placeholder: "agent" },
      { name: "since", label: "Since", type: "datetime-local", value: filters.since?.slice(0, 16) },
      { name: "until", label: "Until", type: "datetime-local", value: filters.until?.slice(0, 16) },
    ],
    "Filter",
    async (values) => {
      const query = {};
      for (const [k, v] of Object.entries(values)) if (v) query[k] = k === "since" || k === "until" ? new Date(v).toISOString() : v;
      page.go(`#/audit/${encodeURIComponent(new URLSearchParams(query).toString())}`);
    }
  );
  return section("Audit log", filterForm, list, more);
}
