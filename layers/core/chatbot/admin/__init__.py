"""The admin API: one table of actions (`framework.actions`) served as REST routes and as the original's
`/admin-api.php?action=NAME` / `/admin-api.php/NAME`, by one FastAPI app (`app.create_app`).

Adding an action — a new resource is a new module in `chatbot/admin/actions/` (found automatically):

    from chatbot.admin.framework import ActionContext, Paged, actions, requires
    from chatbot.models.agents import Agent, AgentCreate
    from chatbot.services.agents import AgentService

    class AgentId(BaseModel):
        id: str                                  # REST: the {id} path segment; legacy: ?id=

    @actions.action("create_agent", "POST", "/admin/agents", access=requires("create"), resource="agent",
                    body=AgentCreate, response=Agent, status_code=201, audit="agent.create")
    def create_agent(ctx: ActionContext, params: None, body: AgentCreate) -> Agent:
        \"\"\"Create an agent.\"\"\"                # first docstring line = OpenAPI summary
        return AgentService.from_settings(ctx.settings).create(body)

- `handler(ctx, params, body)`: `params` is the validated `params=` model (path + query), `body` the validated
  `body=` model (JSON), each None when not declared; `ctx` has `principal`, `settings`, `request_id`,
  `source_ip`. Return a model (or dict, validated by `response=`), `Paged(items, next_cursor)` with
  `paged=True`, `Result(data, status)` for another status, or a Starlette `Response` (e.g. a stream).
- `access=requires("read")`, or `self_or("manage_users", subject)` where `subject(ctx, params, body)` returns
  the user id the request is about (None = the caller): the caller needs the permission unless it is them.
- `audit="agent.create"` is required on every non-GET action: an entry is written on success (outcome
  success), on refusal (denied) and on failure, with a redacted summary of params and body; the resource id is
  `ctx.resource_id`, else the `id` parameter, else the result's `id`.
- `legacy_methods=("POST",)`: methods the original also accepted, served on the legacy routes only.
- Raise `chatbot.errors` exceptions (NotFound, Conflict, ...); `errors=(409,)` documents extra statuses.
- `media_type=...` when the handler returns a Response that is not the JSON envelope (a server-sent events
  stream, Prometheus text), so the OpenAPI document says what comes back.

Every request runs: rate limit by source IP → authenticate → rate limit by credential → permission →
validate → handler → audit → `admin_request` log line (see `framework`). `chatbot.http.PrincipalDep` gives
routes outside the table the same gate.
"""
