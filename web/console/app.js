// Console shell: sign-in, navigation by hash (#/agents, #/jobs, ...), one page module per area.
import { ApiError, api, can, session } from "./api.js";
import { button, form, h, notify } from "./ui.js";
import agents from "./pages/agents.js";
import prompts from "./pages/prompts.js";
import stores from "./pages/stores.js";
import { jobs, dlq } from "./pages/jobs.js";
import users from "./pages/users.js";
import audit from "./pages/audit.js";
import { health, metrics } from "./pages/health.js";

// Only what the role may do is offered (the server decides anyway).
const PAGES = [
  { path: "agents", title: "Agents", render: agents, permission: "read" },
  { path: "prompts", title: "Prompts", render: prompts, permission: "read" },
  { path: "vector-stores", title: "Vector stores", render: stores, permission: "read" },
  { path: "jobs", title: "Jobs", render: jobs, permission: "read" },
  { path: "dlq", title: "Dead letters", render: dlq, permission: "manage_jobs" },
  { path: "users", title: "Users & API keys", render: users, permission: "read" },
  { path: "audit", title: "Audit log", render: audit, permission: "read" },
  { path: "health", title: "Health", render: health, permission: "read" },
  { path: "metrics", title: "Usage & metrics", render: metrics, permission: "read" },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let timers = [];
let navigation = 0; // only the latest navigation may render: an earlier one may still be loading

/** Per-page context: repeating refreshes stop when the page is left. */
function pageContext(params, current) {
  return {
    params,
    every(ms, fn) {
      if (current === navigation) timers.push(setInterval(fn, ms));
    },
    go,
    refresh: () => route(),
  };
}

async function route() {
  const current = ++navigation;
  timers.forEach(clearInterval);
  timers = [];
  const signedIn = session.load();
  const [path, ...params] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (!signedIn) return renderSignIn();
  const pages = PAGES.filter((p) => can(p.permission));
  const page = pages.find((p) => p.path === path) || pages[0];
  renderNav(pages, page);
  document.title = `${page.title} · Chatbot console`;
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  let content;
  try {
    content = await page.render(pageContext(params, current));
  } catch (error) {
    content = h("p", { class: "error", role: "alert" }, error.message);
  }
  if (current === navigation) main.replaceChildren(h("h1", {}, page.title), content);
}

function renderNav(pages, current) {
  const me = session.load().me;
  nav.replaceChildren(
    ...pages.map((p) => h("a", { href: `#/${p.path}`, "aria-current": p === current ? "page" : null }, p.title))
  );
  who.replaceChildren(
    h("span", {}, `${me.email} (${me.role})`),
    button("Sign out", () => {
      session.clear();
      go("");
    })
  );
}

function renderSignIn() {
  nav.replaceChildren();
  who.replaceChildren();
  document.title = "Sign in · Chatbot console";
  main.replaceChildren(
    h("h1", {}, "Sign in"),
    h("p", {}, "Use the admin token or an API key with the admin scope. It is kept for this tab only."),
    form(
      [
        { name: "token", label: "Admin token or API key", type: "password", required: true },
        { name: "apiBase", label: "API URL", value: location.origin, required: true },
      ],
      "Sign in",
      async ({ token, apiBase }) => {
        session.save({ apiBase });
        try {
          const me = (await api("GET", "/admin/me", { token })).data;
          session.save({ apiBase, token, me });
        } catch (error) {
          session.clear();
          throw error instanceof ApiError && error.status === 401 ? new Error("That token was not accepted.") : error;
        }
        notify(`Signed in as ${session.load().me.email}`);
        go("#/agents");
      }
    )
  );
}

/** Navigates to `hash`, rendering again when it is already the current one. */
function go(hash) {
  if (location.hash.replace(/^#$/, "") === hash) route();
  else location.hash = hash;
}

window.addEventListener("console:unauthorized", () => {
  if (!session.load()) return;
  session.clear();
  notify("Your session ended; sign in again.", "error");
  route();
});
window.addEventListener("hashchange", route);
route();
