// Users (manage_users) and API keys: a new key is shown once, with a copy button.
import { can, get, post, session } from "../api.js";
import { act, badge, button, fmtDate, form, h, notify, section, table } from "../ui.js";

const ROLES = ["viewer", "admin", "super-admin"];

export default async function users(page) {
  if (page.params[0]) return keysPage(page, page.params[0]);
  if (!can("manage_users")) return keysPage(page, null); // your own keys
  const list = (await get("/admin/users", { limit: 100 })).data;
  return h(
    "div",
    {},
    section(
      "Users",
      table(
        [
          { label: "Email", value: (u) => h("a", { href: `#/users/${encodeURIComponent(u.id)}` }, u.email) },
          {
            label: "Role",
            value: (u) => {
              const select = h("select", { "aria-label": `Role of ${u.email}`, disabled: !u.is_active }, ROLES.map((r) => h("option", { value: r, selected: r === u.role }, r)));
              select.addEventListener("change", () => act(() => post(`/admin/users/${u.id}/role`, { role: select.value }), "Role changed").then(page.refresh));
              return select;
            },
          },
          { label: "Status", value: (u) => badge(u.is_active ? "active" : "inactive", u.is_active ? "active" : "revoked") },
          { label: "Created", value: (u) => fmtDate(u.created_at) },
          {
            label: "",
            value: (u) =>
              h(
                "div",
                { class: "actions" },
                button("API keys", () => page.go(`#/users/${encodeURIComponent(u.id)}`)),
                u.is_active ? button("Deactivate", () => confirm(`Deactivate ${u.email}? Their keys stop working.`) && act(() => post(`/admin/users/${u.id}/deactivate`), "Deactivated").then(page.refresh), { class: "danger" }) : null
              ),
          },
        ],
        list,
        "No users yet: create one to give it API keys."
      )
    ),
    section(
      "New user",
      form(
        [
          { name: "email", label: "Email", type: "email", required: true },
          { name: "role", label: "Role", type: "select", options: ROLES, value: "admin" },
        ],
        "Create user",
        async (values) => {
          const user = (await post("/admin/users", values)).data;
          notify(`User ${user.email} created`);
          page.go(`#/users/${encodeURIComponent(user.id)}`);
        }
      )
    )
  );
}

async function keysPage(page, userId) {
  const query = userId ? { user_id: userId } : {};
  const owner = userId && can("manage_users") ? (await get(`/admin/users/${encodeURIComponent(userId)}`)).data : session.load().me;
  const keys = (await get("/admin/api-keys", query)).data;
  const created = h("div", { "aria-live": "polite" });
  return h(
    "div",
    {},
    can("manage_users") ? h("p", {}, h("a", { href: "#/users" }, "← All users")) : null,
    section(
      `API keys of ${owner.email}`,
      table(
        [
          { label: "Name", value: (k) => k.name },
          { label: "Key", value: (k) => h("code", {}, k.key_prefix) },
          { label: "Scopes", value: (k) => k.scopes.join(", ") },
          { label: "Status", value: (k) => (k.revoked_at ? badge("revoked") : k.is_active ? badge("active") : badge("expired", "revoked")) },
          { label: "Last used", value: (k) => fmtDate(k.last_used_at) },
          { label: "Expires", value: (k) => (k.expires_at ? fmtDate(k.expires_at) : "never") },
          {
            label: "",
            value: (k) =>
              k.revoked_at ? null : button("Revoke", () => confirm(`Revoke ${k.name}? Clients using it stop working at once.`) && act(() => post(`/admin/api-keys/${k.id}/revoke`), "Revoked").then(page.refresh), { class: "danger" }),
          },
        ],
        keys,
        "No API keys."
      )
    ),
    section(
      "New API key",
      created,
      form(
        [
          { name: "name", label: "Name", required: true, value: "API Key" },
          { name: "admin", label: "Scope: admin", type: "checkbox", value: true },
          { name: "chat", label: "Scope: chat", type: "checkbox" },
          { name: "expires_in_days", label: "Expires in days (empty: never)", type: "number" },
        ],
        "Create key",
        async (values) => {
          const scopes = ["admin", "chat"].filter((s) => values[s]);
          const body = { name: values.name, scopes, ...(userId ? { user_id: userId } : {}) };
          if (values.expires_in_days) body.expires_in_days = Number(values.expires_in_days);
          const key = (await post("/admin/api-keys", body)).data;
          created.replaceChildren(secretBox(key.key), h("button", { type: "button", onclick: page.refresh }, "Done — I saved it"));
        }
      )
    )
  );
}

/** The new key, shown this once. */
function secretBox(secret) {
  const code = h("code", { "data-testid": "new-api-key" }, secret);
  return h(
    "div",
    { class: "secret", role: "status" },
    h("strong", {}, "Copy this key now; it will not be shown again:"),
    code,
    button("Copy", async () => {
      try {
        await navigator.clipboard.writeText(secret);
        notify("Copied");
      } catch {
        getSelection().selectAllChildren(code); // no clipboard permission: select it for Ctrl+C
        notify("Press Ctrl+C to copy", "error");
      }
    })
  );
}
