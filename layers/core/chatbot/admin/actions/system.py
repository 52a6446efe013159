"""System actions: detailed health, metrics, who am I, admin token rotation."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.responses import Response

from chatbot.admin.framework import ActionContext, Result, actions, requires
from chatbot.models.auth import PrincipalPublic
from chatbot.services import prometheus, token_rotation
from chatbot.services.health import HealthReport, run_health


@actions.action(
    "health",
    "GET",
    "/admin/health",
    access=requires("read"),
    resource="system",
    response=HealthReport,
    errors=(503,),
)
def health(ctx: ActionContext, params: None, body: None) -> Result:
    """Health of the platform's dependencies.

    `status` is ok, degraded or unhealthy; unhealthy answers 503 (with the same body).
    """
    report = run_health(ctx.settings)
    return Result(report, 503 if report.status == "unhealthy" else 200)


@actions.action(
    "metrics",
    "GET",
    "/admin/metrics",
    access=requires("manage_jobs"),
    resource="system",
    media_type=prometheus.CONTENT_TYPE,
)
def metrics(ctx: ActionContext, params: None, body: None) -> Response:
    """Current gauges (jobs, queues, agents, users, table sizes, worker) in Prometheus text format.

    For scrapers of the original's metrics endpoint; admins only. CloudWatch holds the same values every
    minute (metrics-push), with the counters from the log metric filters.
    """
    return Response(prometheus.scrape(ctx.settings), media_type=prometheus.CONTENT_TYPE)


@actions.action(
    "whoami", "GET", "/admin/me", access=requires("read"), resource="system", response=PrincipalPublic
)
def whoami(ctx: ActionContext, params: None, body: None) -> PrincipalPublic:
    """The authenticated caller: identity, role, permissions and key scopes."""
    p = ctx.principal
    return PrincipalPublic(
        id=p.id,
        email=p.email,
        role=p.role,
        auth_method=p.auth_method,
        api_key_id=p.api_key_id,
        scopes=list(p.scopes),
        permissions=sorted(p.permissions),
    )


class TokenRotated(BaseModel):
    success: bool = True
    new_token: str = Field(description="The new admin token; shown this once")
    version_id: str
    rotated_at: str
    grace_minutes: int = Field(description="Minutes the previous token stays valid (0: it stopped at once)")
    message: str


@actions.action(
    "rotate_admin_token",
    "POST",
    "/admin/token/rotate",
    access=requires("rotate_tokens"),
    resource="system",
    response=TokenRotated,
    audit="token.rotate",
    errors=(500, 503),
)
def rotate_admin_token(ctx: ActionContext, params: None, body: None) -> TokenRotated:
    """Rotate the admin token now and return the new one (once).

    Runs the four Secrets Manager rotation steps. The previous token stops working when rotation finishes,
    unless ADMIN_TOKEN_GRACE_MINUTES keeps it valid for a while; other warm containers drop their cached
    copy within ADMIN_TOKEN_CACHE_SECONDS.
    """
    rotated = token_rotation.rotate_now(ctx.settings.admin_token_secret_id)
    ctx.resource_id = rotated.version_id
    grace = ctx.settings.admin_token_grace_minutes
    return TokenRotated(
        new_token=rotated.token,
        version_id=rotated.version_id,
        rotated_at=rotated.rotated_at,
        grace_minutes=grace,
        message="Admin token rotated; the previous token "
        + (f"stays valid for {grace} minutes." if grace else "no longer works."),
    )
