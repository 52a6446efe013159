// Jobs (filters, retry, cancel, a diagnostic job) and the dead-letter queue (history, requeue, delete, redrive).
import { can, del, get, post } from "../api.js";
import { act, badge, button, fmtDate, form, h, notify, renderIfChanged, section, table } from "../ui.js";

const STATUSES = ["", "queued", "running", "completed", "dead", "cancelled"];

const errorsOf = (job) =>
  job.errors?.length
    ? h("details", {}, h("summary", {}, `${job.errors.length} error(s)`), h("pre", {}, job.errors.map((e) => `#${e.attempt} ${e.at}\n${e.error}`).join("\n\n")))
    : job.last_error || "";

export async function jobs(page) {
  const filters = { status: page.params[0] || "", type: page.params[1] || "" };
  const stats = h("p", { class: "muted" });
  const list = h("div");
  async function refresh() {
    const [counts, result] = await Promise.all([get("/admin/jobs/stats"), get("/admin/jobs", { ...filters, limit: 50 })]);
    stats.textContent = ["queued", "running", "completed", "dead", "cancelled"].map((s) => `${s}: ${counts.data[s]}`).join(" · ");
    renderIfChanged(list, result.data, () =>
      table(
        [
          { label: "Job", value: (j) => h("code", {}, j.id) },
          { label: "Type", value: (j) => j.type },
          { label: "Status", value: (j) => badge(j.status) },
          { label: "Attempts", value: (j) => `${j.attempts}/${j.max_attempts}` },
          { label: "Errors", value: errorsOf },
          { label: "Created", value: (j) => fmtDate(j.created_at) },
          {
            label: "",
            value: (j) =>
              can("manage_jobs")
                ? h(
                    "div",
                    { class: "actions" },
                    ["dead", "cancelled"].includes(j.status) ? button("Retry", () => act(() => post(`/admin/jobs/${j.id}/retry`, undefined, { reset_attempts: true }), "Retrying").then(refresh)) : null,
                    ["queued", "running"].includes(j.status) ? button("Cancel", () => act(() => post(`/admin/jobs/${j.id}/cancel`), "Cancelled").then(refresh), { class: "danger" }) : null
                  )
                : null,
          },
        ],
        result.data,
        "No jobs match."
      )
    );
  }
  await refresh();
  page.every(3000, () => refresh().catch(() => null));
  const filterForm = form(
    [
      { name: "status", label: "Status", type: "select", options: STATUSES, value: filters.status },
      { name: "type", label: "Type", value: filters.type, placeholder: "file_ingest" },
    ],
    "Filter",
    async (values) => page.go(`#/jobs/${encodeURIComponent(values.status)}/${encodeURIComponent(values.type)}`)
  );
  return h(
    "div",
    {},
    section("Jobs", filterForm, stats, list),
    can("manage_jobs")
      ? section(
          "Enqueue a diagnostic job",
          h("p", { class: "muted" }, "Payload: sleep_ms, fail_times, fail_permanently, fail_until_requeued."),
          form(
            [
              { name: "payload", label: "Payload (JSON)", type: "textarea", value: '{"sleep_ms": 100}' },
              { name: "max_attempts", label: "Max attempts", type: "number" },
            ],
            "Enqueue",
            async (values) => {
              const body = { type: "diagnostic", payload: JSON.parse(values.payload || "{}") };
              if (values.max_attempts) body.max_attempts = Number(values.max_attempts);
              const job = (await post("/admin/jobs", body)).data;
              notify(`Enqueued ${job.id}`);
              await refresh();
            }
          )
        )
      : null
  );
}

export async function dlq(page) {
  const list = h("div");
  const redrive = h("div", { class: "toolbar" });
  async function refresh() {
    const [entries, tasks] = await Promise.all([get("/admin/dlq", { limit: 100 }), get("/admin/dlq/redrive-tasks", { limit: 5 })]);
    renderIfChanged(list, entries.data, () =>
      table(
        [
          { label: "Job", value: (j) => h("code", {}, j.id) },
          { label: "Type", value: (j) => j.type },
          { label: "Status", value: (j) => badge(j.status) },
          { label: "Attempts", value: (j) => `${j.attempts}/${j.max_attempts}` },
          { label: "Error history", value: errorsOf },
          { label: "Died", value: (j) => fmtDate(j.finished_at) },
          {
            label: "",
            value: (j) =>
              h(
                "div",
                { class: "actions" },
                button("Requeue", () => act(() => post(`/admin/dlq/${j.id}/requeue`, undefined, { reset_attempts: true }), `Requeued ${j.id}: see Jobs`).then(refresh)),
                button("Delete", () => confirm(`Delete ${j.id} from the DLQ?`) && act(() => del(`/admin/dlq/${j.id}`), "Deleted").then(refresh), { class: "danger" })
              ),
          },
        ],
        entries.data,
        "The dead-letter queue is empty."
      )
    );
    const task = tasks.data[0];
    renderIfChanged(redrive, [entries.data.length, task], () => [
      button("Redrive all", () => act(() => post("/admin/dlq/redrive"), "Redrive started").then(refresh), { class: "primary", disabled: !entries.data.length }),
      task ? redriveProgress(task) : "",
    ]);
  }
  await refresh();
  page.every(2000, () => refresh().catch(() => null));
  return h("div", {}, section("Dead-letter queue", redrive, list));
}

function redriveProgress(task) {
  const total = task.messages_to_move;
  return h(
    "span",
    { class: "muted" },
    `Last redrive ${fmtDate(task.created_at)}: `,
    badge(task.status),
    total ? h("progress", { max: total, value: task.messages_moved || 0 }) : null,
    ` ${task.messages_moved ?? 0}${total ? "/" + total : ""} moved`,
    task.failure_reason ? h("span", { class: "error" }, ` ${task.failure_reason}`) : null
  );
}
