// Prompts and their versions.
import { can, del, get, post } from "../api.js";
import { act, button, fmtDate, form, h, notify, section, table } from "../ui.js";

export default async function prompts(page) {
  if (page.params[0]) return promptDetail(page, page.params[0]);
  const list = (await get("/admin/prompts", { limit: 100 })).data;
  return h(
    "div",
    {},
    section(
      "Prompts",
      table(
        [
          { label: "Name", value: (p) => h("a", { href: `#/prompts/${encodeURIComponent(p.id)}` }, p.name) },
          { label: "Latest version", value: (p) => p.latest_version || "—" },
          { label: "Versions", value: (p) => String(p.version_count ?? 0) },
          { label: "OpenAI id", value: (p) => p.openai_prompt_id || "—" },
          { label: "Updated", value: (p) => fmtDate(p.updated_at) },
          {
            label: "",
            value: (p) =>
              can("delete") ? button("Delete", () => confirm(`Delete prompt ${p.name}?`) && act(() => del(`/admin/prompts/${p.id}`), "Deleted").then(page.refresh), { class: "danger" }) : null,
          },
        ],
        list
      ),
      can("update") ? button("Sync from OpenAI", () => act(() => post("/admin/prompts/sync"), "Synced").then(page.refresh)) : null
    ),
    can("create")
      ? section(
          "New prompt",
          form(
            [
              { name: "name", label: "Name", required: true },
              { name: "description", label: "Description" },
              { name: "content", label: "Content", type: "textarea" },
            ],
            "Create prompt",
            async (values) => {
              const prompt = (await post("/admin/prompts", { name: values.name, description: values.description || null, content: values.content || null })).data;
              notify(`Prompt ${prompt.name} created`);
              page.go(`#/prompts/${encodeURIComponent(prompt.id)}`);
            }
          )
        )
      : null
  );
}

async function promptDetail(page, id) {
  const [prompt, versions] = await Promise.all([get(`/admin/prompts/${encodeURIComponent(id)}`), get(`/admin/prompts/${encodeURIComponent(id)}/versions`, { limit: 100 })]);
  return h(
    "div",
    {},
    h("p", {}, h("a", { href: "#/prompts" }, "← All prompts")),
    section(
      `${prompt.data.name} — versions`,
      table(
        [
          { label: "Version", value: (v) => v.version },
          { label: "Summary", value: (v) => v.summary || "" },
          { label: "Content", value: (v) => h("details", {}, h("summary", {}, "show"), h("pre", {}, v.content || "")) },
          { label: "Created", value: (v) => fmtDate(v.created_at) },
        ],
        versions.data
      )
    ),
    can("create")
      ? section(
          "New version",
          form(
            [
              { name: "version", label: "Version", required: true, placeholder: "v2" },
              { name: "summary", label: "Summary" },
              { name: "content", label: "Content", type: "textarea" },
            ],
            "Add version",
            async (values) => {
              await post(`/admin/prompts/${prompt.data.id}/versions`, { version: values.version, summary: values.summary || null, content: values.content || null });
              notify("Version added");
              page.refresh();
            }
          )
        )
      : null
  );
}
