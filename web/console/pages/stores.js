// Vector stores and their files: upload with progress, then ingestion status until it settles.
import { can, del, get, post, postWithProgress } from "../api.js";
import { act, badge, button, fmtDate, form, h, notify, renderIfChanged, section, table } from "../ui.js";

export default async function stores(page) {
  if (page.params[0]) return storeDetail(page, page.params[0]);
  const list = (await get("/admin/vector-stores", { limit: 100 })).data;
  return h(
    "div",
    {},
    section(
      "Vector stores",
      table(
        [
          { label: "Name", value: (s) => h("a", { href: `#/vector-stores/${encodeURIComponent(s.id)}` }, s.name) },
          { label: "Status", value: (s) => badge(s.status) },
          { label: "OpenAI id", value: (s) => s.openai_store_id || "—" },
          { label: "Created", value: (s) => fmtDate(s.created_at) },
          {
            label: "",
            value: (s) =>
              can("delete") ? button("Delete", () => confirm(`Delete vector store ${s.name}?`) && act(() => del(`/admin/vector-stores/${s.id}`), "Deleted").then(page.refresh), { class: "danger" }) : null,
          },
        ],
        list
      ),
      can("update") ? button("Sync from OpenAI", () => act(() => post("/admin/vector-stores/sync"), "Synced").then(page.refresh)) : null
    ),
    can("create")
      ? section(
          "New vector store",
          form([{ name: "name", label: "Name", required: true }], "Create vector store", async (values) => {
            const store = (await post("/admin/vector-stores", { name: values.name })).data;
            notify(`Vector store ${store.name} created`);
            page.go(`#/vector-stores/${encodeURIComponent(store.id)}`);
          })
        )
      : null
  );
}

async function storeDetail(page, id) {
  const base = `/admin/vector-stores/${encodeURIComponent(id)}`;
  const store = (await get(base)).data;
  const files = h("div");
  async function refreshFiles() {
    const list = (await get(`${base}/files`, { limit: 100 })).data;
    renderIfChanged(files, list, () =>
      table(
        [
          { label: "File", value: (f) => f.name },
          { label: "Size", value: (f) => (f.size == null ? "—" : `${f.size} B`) },
          { label: "Status", value: (f) => h("span", {}, badge(f.status), f.error_message ? h("span", { class: "error" }, " " + f.error_message) : null) },
          { label: "Added", value: (f) => fmtDate(f.created_at) },
          { label: "", value: (f) => (can("delete") ? button("Remove", () => act(() => del(`${base}/files/${f.id}`), "Removed").then(refreshFiles), { class: "danger" }) : null) },
        ],
        list,
        "No files yet."
      )
    );
    return list;
  }
  await refreshFiles();
  // Ingestion runs in the worker: the statuses refresh while the page is open.
  page.every(2000, () => refreshFiles().catch(() => null));
  return h(
    "div",
    {},
    h("p", {}, h("a", { href: "#/vector-stores" }, "← All vector stores")),
    section(`${store.name} — files`, files),
    can("create") ? section("Upload a file", uploader(base, refreshFiles)) : null
  );
}

function uploader(base, refreshFiles) {
  const input = h("input", { type: "file", "aria-label": "File to upload" });
  const progress = h("progress", { max: 1, value: 0, hidden: true });
  const status = h("span", { class: "muted" });
  const upload = button(
    "Upload",
    async () => {
      const file = input.files[0];
      if (!file) return notify("Choose a file first", "error");
      upload.disabled = true;
      progress.hidden = false;
      status.textContent = "Reading…";
      try {
        const data = await new Promise((resolve, reject) => {
          const reader = new FileReader();
          reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
          reader.onerror = () => reject(reader.error);
          reader.readAsDataURL(file);
        });
        status.textContent = "Uploading…";
        await postWithProgress(`${base}/files`, { name: file.name, file_data: data, size: file.size, mime_type: file.type || null }, (f) => (progress.value = f));
        status.textContent = "Uploaded; ingestion status below.";
        input.value = "";
        await refreshFiles();
      } catch (error) {
        status.textContent = "";
        notify(error.message, "error");
      } finally {
        upload.disabled = false;
      }
    },
    { class: "primary" }
  );
  return h("div", { class: "toolbar" }, input, upload, progress, status);
}
