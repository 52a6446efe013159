"""Provision template.yaml into the emulator: the local resources are the template's.

`provision(template_path)` transforms the SAM template to CloudFormation, evaluates Parameters and
Conditions, and creates every data resource (queues, tables, secrets, buckets, log groups, metric filters,
alarms, dashboards, topics, ...) through boto3 in dependency order, concurrently. Boto3 reads
AWS_ENDPOINT_URL, so the same code provisions moto's server and moto's in-process `mock_aws`.

Resources moto cannot run (Lambda functions, event source mappings, schedules, the HTTP API, IAM, ...) are
recorded, not created: the local gateway, pollers and scheduler drive the handlers from these records.
Provisioning again against a running (or restored) emulator is idempotent and keeps existing secret values.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.template import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    LOCAL_CODE_BUCKET,
    IntrinsicError,
    Resolver,
    TemplateError,
    code_locations,
    load_and_transform,
    references,
)

log = logging.getLogger("infra.local.provision")

DEFAULT_STACK_NAME = "chatbot-local"


class ProvisionError(RuntimeError):
    """A resource could not be created in the emulator."""


@dataclass
class Resource:
    logical_id: str
    type: str
    physical_id: str
    arn: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    # created: made in the emulator now; existing: was already there (restart); recorded: no AWS call
    # by design; unsupported: a type the local stack does not know (recorded, warned once).
    status: str = "created"


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str  # "app.handler"
    code_dir: Path | None  # absolute path of the function's CodeUri, None for code outside the repo
    module: str  # import name of the handler module, e.g. "functions.chat.app"
    handler_file: Path | None  # code_dir / "app.py"
    handler_attr: str  # "handler"
    runtime: str | None
    timeout: int
    memory_size: int
    environment: dict[str, str]
    layers: list[str]
    log_group_name: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Route:
    method: str  # upper case, "ANY" for any method
    path: str  # "/admin/{proxy+}" or "$default"
    function: str  # logical id of the function
    api: str  # logical id of the HTTP API
    payload_format_version: str = "2.0"

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass
class Schedule:
    logical_id: str
    expression: str  # "rate(1 minute)" / "cron(0 3 * * ? *)"
    function: str  # logical id
    arn: str  # rule / schedule ARN (the event's `resources`)
    kind: str  # "events" (AWS::Events::Rule) or "scheduler" (AWS::Scheduler::Schedule)
    input: Any = None  # the target's constant Input (parsed JSON), None for the scheduled-event shape
    enabled: bool = True
    timezone: str | None = None


@dataclass
class EventSourceMapping:
    logical_id: str
    function: str  # logical id
    source_arn: str
    queue: str | None  # logical id of the SQS queue
    queue_url: str | None
    batch_size: int = 10
    maximum_batching_window_seconds: int = 0
    function_response_types: list[str] = field(default_factory=list)
    enabled: bool = True
    maximum_concurrency: int | None = None

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass
class RotationSchedule:
    logical_id: str
    secret_arn: str
    function: str | None  # logical id of the rotation function
    rules: dict[str, Any]


@dataclass
class Stack:
    name: str
    region: str
    account_id: str
    template_path: Path
    parameters: dict[str, Any]
    conditions: dict[str, bool]
    source_template: dict[str, Any]
    template: dict[str, Any]  # after the SAM transform
    resources: dict[str, Resource] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    event_source_mappings: list[EventSourceMapping] = field(default_factory=list)
    rotations: list[RotationSchedule] = field(default_factory=list)
    # HTTP API logical id → its CORS configuration (`x-amazon-apigateway-cors`, camelCase keys) if any.
    api_cors: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # logical id → condition that is false
    unsupported: dict[str, str] = field(default_factory=dict)  # logical id → type
    outputs: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    # Settings left for later by `provision(..., defer_settings=True)`; see `apply_deferred`.
    deferred: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def template_logical_ids(self) -> set[str]:
        """Logical ids of the transformed template whose Condition holds (what must exist locally)."""
        return set(self.template.get("Resources", {})) - set(self.skipped)

    @property
    def source_logical_ids(self) -> set[str]:
        return set(self.source_template.get("Resources", {}))

    def physical_id(self, logical_id: str) -> str:
        return self.resources[logical_id].physical_id

    def by_type(self, resource_type: str) -> dict[str, Resource]:
        return {k: r for k, r in self.resources.items() if r.type == resource_type}

    def function_environment(self, logical_id: str) -> dict[str, str]:
        return dict(self.functions[logical_id].environment)

    def environment(self) -> dict[str, str]:
        """The functions' environment to set in this process: the template's Globals plus every
        per-function variable on which the functions agree. A variable two functions set differently is
        left out (one process cannot hold both values), and so is a function's own identity
        (POWERTOOLS_SERVICE_NAME), which would mislabel every other function's logs."""
        merged: dict[str, str] = {}
        conflicts: set[str] = set(_PER_FUNCTION_ENV)
        for spec in self.functions.values():
            for key, value in spec.environment.items():
                if key in merged and merged[key] != value:
                    conflicts.add(key)
                merged.setdefault(key, value)
        return {k: v for k, v in merged.items() if k not in conflicts}

    def function_by_name(self, name_or_arn: str) -> FunctionSpec | None:
        for spec in self.functions.values():
            if name_or_arn in (spec.name, spec.arn, spec.logical_id) or name_or_arn.startswith(
                spec.arn + ":"
            ):
                return spec
        return None

    def apply_deferred(self, max_workers: int = 8) -> None:
        """Apply the settings `provision(defer_settings=True)` postponed; raises the first failure."""
        pending, self.deferred = self.deferred, []
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="provision-later") as pool:
            for future in [pool.submit(fn) for fn in pending]:
                future.result()

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.resources.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts


_PER_FUNCTION_ENV = ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_FUNCTION_NAME")


# --- entry point --------------------------------------------------------------------------------------


def provision(
    template_path: str | Path,
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: dict[str, Any] | None = None,
    region: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
    session: Any = None,
    max_workers: int = 8,
    include_types: Collection[str] | None = None,
    known: dict[str, Resource] | None = None,
    defer_settings: bool = False,
    lean: bool = False,
) -> Stack:
    """Create the template's resources in whatever AWS_ENDPOINT_URL points at; return the Stack.

    `include_types` limits the emulator calls to those resource types (e.g. `RUNTIME_TYPES`, what the
    functions touch at run time); the others are recorded with their names, so references still resolve.
    `known` are resources an earlier call created (`stack.resources`): reused as they are, no AWS call —
    so a second pass can create the rest (`OBSERVABILITY_TYPES`) in the background.
    `defer_settings` postpones what no request needs at once (table TTL and PITR, bucket lifecycle,
    encryption, access block, CORS, tags) to `Stack.apply_deferred()`.
    `lean` (for unit tests' fresh in-process mocks) leaves out what has no observable effect in moto:
    those deferred settings, and table encryption at rest (moto makes a KMS key per mock for it).
    """
    import os

    started = time.perf_counter()
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    path = Path(template_path).resolve()
    source, transformed = load_and_transform(path, parameters=parameters, region=region)
    prov = _Provisioner(
        path=path,
        source=source,
        template=transformed,
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        parameters=parameters or {},
        session=session,
        max_workers=max_workers,
        include_types=include_types,
        known=known,
        defer_settings=defer_settings or lean,
        lean=lean,
    )
    stack = prov.run()
    if lean:
        stack.deferred.clear()
    stack.duration_s = time.perf_counter() - started
    return stack


# --- the provisioner ----------------------------------------------------------------------------------

_CLIENT_FOR_TYPE = {
    "AWS::SQS::Queue": "sqs",
    "AWS::SQS::QueuePolicy": "sqs",
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::SecretsManager::Secret": "secretsmanager",
    "AWS::S3::Bucket": "s3",
    "AWS::S3::BucketPolicy": "s3",
    "AWS::Logs::LogGroup": "logs",
    "AWS::Logs::MetricFilter": "logs",
    "AWS::CloudWatch::Alarm": "cloudwatch",
    "AWS::CloudWatch::CompositeAlarm": "cloudwatch",
    "AWS::CloudWatch::Dashboard": "cloudwatch",
    "AWS::SNS::Topic": "sns",
    "AWS::SNS::Subscription": "sns",
    "AWS::SSM::Parameter": "ssm",
}

# Types the local stack deliberately does not create in the emulator: the local runtime plays their part
# (or they have no local meaning). Recorded with a physical id and ARN so references resolve.
_RECORDED_TYPES = {
    "AWS::Lambda::Function",
    "AWS::Lambda::LayerVersion",
    "AWS::Lambda::LayerVersionPermission",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Permission",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Lambda::Url",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Events::Rule",
    "AWS::Scheduler::Schedule",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::SecretsManager::RotationSchedule",
    "AWS::SecretsManager::ResourcePolicy",
    "AWS::SecretsManager::SecretTargetAttachment",
    "AWS::SNS::TopicPolicy",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::CloudFrontOriginAccessIdentity",
    "AWS::CloudFront::ResponseHeadersPolicy",
    "AWS::CloudFront::CachePolicy",
    "AWS::CloudFront::Function",
    "AWS::CertificateManager::Certificate",
    "AWS::Route53::RecordSet",
    "AWS::CodeDeploy::Application",
    "AWS::CodeDeploy::DeploymentGroup",
    "AWS::XRay::Group",
    "AWS::XRay::SamplingRule",
    "AWS::Budgets::Budget",
    "AWS::WAFv2::WebACL",
    "AWS::WAFv2::WebACLAssociation",
    "AWS::Pipes::Pipe",
    "AWS::CloudFormation::WaitConditionHandle",
}

_ARN_SERVICE = {
    "AWS::Events::Rule": ("events", "rule/{name}"),
    "AWS::Scheduler::Schedule": ("scheduler", "schedule/{group}/{name}"),
    "AWS::KMS::Key": ("kms", "key/{name}"),
    "AWS::CloudWatch::Alarm": ("cloudwatch", "alarm:{name}"),
    "AWS::CloudWatch::CompositeAlarm": ("cloudwatch", "alarm:{name}"),
    "AWS::CloudWatch::Dashboard": ("cloudwatch", "dashboard/{name}"),
}

_warned_types: set[str] = set()
_warn_lock = threading.Lock()


class _Provisioner:
    def __init__(
        self,
        *,
        path: Path,
        source: dict[str, Any],
        template: dict[str, Any],
        stack_name: str,
        region: str,
        account_id: str,
        parameters: dict[str, Any],
        session: Any,
        max_workers: int,
        include_types: Collection[str] | None = None,
        known: dict[str, Resource] | None = None,
        defer_settings: bool = False,
        lean: bool = False,
    ) -> None:
        self.defer_settings = defer_settings
        self.lean = lean
        self.include_types = None if include_types is None else frozenset(include_types)
        self.known = {k: r for k, r in (known or {}).items() if r.status in ("created", "existing")}
        self.path = path
        self.base_dir = path.parent
        self.source = source
        self.template = template
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.max_workers = max_workers
        self._session = session
        self._clients: dict[str, Any] = {}
        self._deferred_lock = threading.Lock()
        self.first_table = threading.Lock()
        self.first_table_done = threading.Event()
        self.resources: dict[str, Resource] = {}
        self.resolver = Resolver(
            template,
            stack_name=stack_name,
            region=region,
            account_id=account_id,
            parameters=parameters,
            ref=self._ref,
            get_att=self._get_att,
        )
        self.stack = Stack(
            name=stack_name,
            region=region,
            account_id=account_id,
            template_path=path,
            parameters=dict(self.resolver.parameters),
            conditions={},
            source_template=source,
            template=template,
        )

    # references

    def _ref(self, logical_id: str) -> Any:
        res = self.resources.get(logical_id)
        if res is None:
            raise IntrinsicError(f"Ref {logical_id} before it exists (missing dependency?)")
        return res.attrs.get("Ref", res.physical_id)

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        res = self.resources.get(logical_id)
        if res is None:
            raise IntrinsicError(f"Fn::GetAtt {logical_id}.{attribute} before it exists")
        if attribute in res.attrs:
            return res.attrs[attribute]
        if attribute == "Arn" and res.arn:
            return res.arn
        if attribute in ("Id", "Name"):
            return res.physical_id
        # An attribute of a recorded-only resource (a CloudFront id, a domain's hosted zone...): a stable
        # stand-in keeps the references resolvable; nothing local depends on its value.
        log.debug("Fn::GetAtt %s.%s has no local value; using a placeholder", logical_id, attribute)
        return f"local-{logical_id}-{attribute}".lower()

    # clients

    def _client(self, service: str) -> Any:
        return self._clients[service]

    def _make_clients(self, services: set[str]) -> None:
        from botocore.config import Config

        session = self._session or new_session(self.region)
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32)
        for service in sorted(services):  # botocore client creation is not thread-safe on one session
            self._clients[service] = session.client(service, region_name=self.region, config=config)

    # run

    def run(self) -> Stack:
        resources: dict[str, Any] = self.template.get("Resources") or {}
        active: dict[str, dict[str, Any]] = {}
        for lid, res in resources.items():
            cond = res.get("Condition")
            if cond is not None and not self.resolver.condition(cond):
                self.stack.skipped[lid] = cond
            else:
                active[lid] = res
        for name in self.template.get("Conditions") or {}:
            self.stack.conditions[name] = self.resolver.condition(name)

        deps: dict[str, set[str]] = {}
        for lid, res in active.items():
            depends_on = res.get("DependsOn") or []
            depends_on = [depends_on] if isinstance(depends_on, str) else list(depends_on)
            refs = references(res.get("Properties") or {}, resources) | set(depends_on)
            deps[lid] = {d for d in refs if d in active and d != lid}

        self._make_clients(
            {
                _CLIENT_FOR_TYPE[r["Type"]]
                for lid, r in active.items()
                if r["Type"] in _CLIENT_FOR_TYPE
                and (self.include_types is None or r["Type"] in self.include_types)
                and r.get("Type") != getattr(self.known.get(lid), "type", None)
            }
        )
        self._run_graph(active, deps)

        self.stack.resources = {lid: self.resources[lid] for lid in active}
        self._collect_functions()
        self._collect_routes()
        self._collect_schedules_and_mappings()
        self.stack.outputs = self._outputs()
        return self.stack

    def _run_graph(self, active: dict[str, dict[str, Any]], deps: dict[str, set[str]]) -> None:
        pending = dict(deps)
        done: set[str] = set()
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="provision") as pool:
            running: dict[Future[Resource], str] = {}
            while pending or running:
                ready = [lid for lid, d in pending.items() if d <= done]
                for lid in ready:
                    del pending[lid]
                    running[pool.submit(self._create, lid, active[lid])] = lid
                if not running:
                    cycle = ", ".join(sorted(pending))
                    raise TemplateError(f"circular dependency between resources: {cycle}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    lid = running.pop(fut)
                    try:
                        self.resources[lid] = fut.result()
                    except (TemplateError, IntrinsicError) as exc:
                        errors.append(f"{lid}: {exc}")
                    except Exception as exc:  # noqa: BLE001 - collected and re-raised as one error
                        errors.append(f"{lid} ({active[lid]['Type']}): {exc.__class__.__name__}: {exc}")
                    done.add(lid)
                if errors:
                    for f in running:
                        f.cancel()
                    break
        if errors:
            raise ProvisionError("provisioning failed: " + "; ".join(errors))

    def _create(self, lid: str, res: dict[str, Any]) -> Resource:
        rtype = res["Type"]
        if lid in self.known and self.known[lid].type == rtype:
            return self.known[lid]
        props = self.resolver.resolve(res.get("Properties") or {}) or {}
        creator = _CREATORS.get(rtype)
        if creator is not None and self.include_types is not None and rtype not in self.include_types:
            return _record_named(self, lid, rtype, props)
        if creator is not None:
            return creator(self, lid, props)
        if rtype not in _RECORDED_TYPES:
            with _warn_lock:
                if rtype not in _warned_types:
                    _warned_types.add(rtype)
                    log.warning("resource type %s is not provisioned locally (recorded only)", rtype)
            self.stack.unsupported[lid] = rtype
            resource = _record(self, lid, rtype, props)
            resource.status = "unsupported"
            return resource
        return _record(self, lid, rtype, props)

    def later(self, fn: Callable[[], None]) -> None:
        """Apply a resource setting that nothing needs at once (TTL, PITR, bucket lifecycle...) now, or,
        with `defer_settings`, in `Stack.apply_deferred()` after start-up."""
        if self.defer_settings:
            with self._deferred_lock:
                self.stack.deferred.append(fn)
        else:
            fn()

    # naming helpers

    def name(self, lid: str, explicit: Any, *, max_len: int = 64, lower: bool = False) -> str:
        if explicit:
            return str(explicit)
        name = f"{self.stack_name}-{lid}"
        if lower:
            name = re.sub(r"[^a-z0-9.-]", "-", name.lower())
        if len(name) > max_len:
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            name = f"{name[: max_len - 9]}-{digest}"
        return name

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        region_part = self.region if region else ""
        account_part = self.account_id if account else ""
        return f"arn:aws:{service}:{region_part}:{account_part}:{resource}"

    def short_id(self, lid: str, length: int = 10) -> str:
        digest = hashlib.sha256(f"{self.stack_name}/{lid}".encode()).hexdigest()
        return digest[:length]

    # collection

    def _collect_functions(self) -> None:
        locations = code_locations(self.source)
        for lid, res in self.resources.items():
            if res.type != "AWS::Lambda::Function":
                continue
            props = res.properties
            code = props.get("Code") or {}
            rel = locations.get(lid)
            if rel is None and code.get("S3Bucket") == LOCAL_CODE_BUCKET:
                rel = code.get("S3Key")
            code_dir = (self.base_dir / rel).resolve() if rel else None
            handler = str(props.get("Handler") or "app.handler")
            module_part, _, attr = handler.rpartition(".")
            module_part = module_part or "app"
            module, handler_file = _module_for(self.base_dir, code_dir, module_part)
            env = {
                k: _env_text(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()
            }
            logging_cfg = props.get("LoggingConfig") or {}
            self.stack.functions[lid] = FunctionSpec(
                logical_id=lid,
                name=res.physical_id,
                arn=res.arn or "",
                handler=handler,
                code_dir=code_dir,
                module=module,
                handler_file=handler_file,
                handler_attr=attr or "handler",
                runtime=props.get("Runtime"),
                timeout=int(props.get("Timeout") or 3),
                memory_size=int(props.get("MemorySize") or 128),
                environment=env,
                layers=[str(x) for x in props.get("Layers") or []],
                log_group_name=str(logging_cfg.get("LogGroup") or f"/aws/lambda/{res.physical_id}"),
            )

    def _function_for(self, value: Any) -> str | None:
        """Logical id of the function a resolved ARN/name (or a Sub-ed integration URI) points at."""
        if not isinstance(value, str):
            return None
        for lid, spec in self.stack.functions.items():
            if value in (spec.name, spec.arn) or spec.arn + "/" in value or value.startswith(spec.arn + ":"):
                return lid
        return None

    def _collect_routes(self) -> None:
        routes: list[Route] = []
        for api_lid, res in self.resources.items():
            if res.type != "AWS::ApiGatewayV2::Api":
                continue
            body = res.properties.get("Body") or {}
            cors = body.get("x-amazon-apigateway-cors") or _cors_from_properties(
                res.properties.get("CorsConfiguration")
            )
            if cors:
                self.stack.api_cors[api_lid] = cors
            for path, ops in (body.get("paths") or {}).items():
                for op_name, op in (ops or {}).items():
                    if not isinstance(op, dict):
                        continue
                    integ = op.get("x-amazon-apigateway-integration") or {}
                    fn = self._function_for(integ.get("uri"))
                    if fn is None:
                        continue
                    method = "ANY" if op_name == "x-amazon-apigateway-any-method" else op_name.upper()
                    version = str(integ.get("payloadFormatVersion") or "2.0")
                    routes.append(Route(method, path, fn, api_lid, version))
        integrations = {
            lid: r for lid, r in self.resources.items() if r.type == "AWS::ApiGatewayV2::Integration"
        }
        for _lid, res in self.resources.items():
            if res.type != "AWS::ApiGatewayV2::Route":
                continue
            route_key = str(res.properties.get("RouteKey", ""))
            target = str(res.properties.get("Target", ""))
            integ_id = target.rsplit("/", 1)[-1]
            integ = next((i for i in integrations.values() if i.physical_id == integ_id), None)
            if integ is None:
                continue
            fn = self._function_for(integ.properties.get("IntegrationUri"))
            if fn is None:
                continue
            api_lid = next(
                (k for k, r in self.resources.items() if r.physical_id == res.properties.get("ApiId")), ""
            )
            method, _, path = route_key.partition(" ")
            if route_key == "$default":
                method, path = "ANY", "$default"
            version = str(integ.properties.get("PayloadFormatVersion") or "2.0")
            routes.append(Route(method.upper(), path, fn, api_lid, version))
        self.stack.routes = sorted(set(routes), key=lambda r: (r.path, r.method))
        for route in self.stack.routes:
            self.stack.functions[route.function].events.append(
                {"type": "HttpApi", "method": route.method, "path": route.path, "api": route.api}
            )

    def _collect_schedules_and_mappings(self) -> None:
        for lid, res in self.resources.items():
            props = res.properties
            if res.type == "AWS::Events::Rule" and props.get("ScheduleExpression"):
                for target in props.get("Targets") or []:
                    fn = self._function_for(target.get("Arn"))
                    if fn is None:
                        continue
                    self.stack.schedules.append(
                        Schedule(
                            logical_id=lid,
                            expression=str(props["ScheduleExpression"]),
                            function=fn,
                            arn=res.arn or "",
                            kind="events",
                            input=_json_or_none(target.get("Input")),
                            enabled=str(props.get("State", "ENABLED")).upper() == "ENABLED",
                        )
                    )
            elif res.type == "AWS::Scheduler::Schedule":
                target = props.get("Target") or {}
                fn = self._function_for(target.get("Arn"))
                if fn is not None:
                    self.stack.schedules.append(
                        Schedule(
                            logical_id=lid,
                            expression=str(props.get("ScheduleExpression", "")),
                            function=fn,
                            arn=res.arn or "",
                            kind="scheduler",
                            input=_json_or_none(target.get("Input")),
                            enabled=str(props.get("State", "ENABLED")).upper() == "ENABLED",
                            timezone=props.get("ScheduleExpressionTimezone"),
                        )
                    )
            elif res.type == "AWS::Lambda::EventSourceMapping":
                fn = self._function_for(props.get("FunctionName"))
                source_arn = str(props.get("EventSourceArn", ""))
                queue = next(
                    (
                        k
                        for k, r in self.resources.items()
                        if r.type == "AWS::SQS::Queue" and r.arn == source_arn
                    ),
                    None,
                )
                if fn is None:
                    continue
                scaling = props.get("ScalingConfig") or {}
                self.stack.event_source_mappings.append(
                    EventSourceMapping(
                        logical_id=lid,
                        function=fn,
                        source_arn=source_arn,
                        queue=queue,
                        queue_url=self.resources[queue].attrs.get("QueueUrl") if queue else None,
                        batch_size=int(props.get("BatchSize") or 10),
                        maximum_batching_window_seconds=int(props.get("MaximumBatchingWindowInSeconds") or 0),
                        function_response_types=list(props.get("FunctionResponseTypes") or []),
                        enabled=_truthy(props.get("Enabled", True)),
                        maximum_concurrency=scaling.get("MaximumConcurrency"),
                    )
                )
            elif res.type == "AWS::SecretsManager::RotationSchedule":
                self.stack.rotations.append(
                    RotationSchedule(
                        logical_id=lid,
                        secret_arn=str(props.get("SecretId", "")),
                        function=self._function_for(props.get("RotationLambdaARN")),
                        rules=dict(props.get("RotationRules") or {}),
                    )
                )
        for sched in self.stack.schedules:
            self.stack.functions[sched.function].events.append(
                {"type": "Schedule", "expression": sched.expression, "rule": sched.logical_id}
            )
        for esm in self.stack.event_source_mappings:
            self.stack.functions[esm.function].events.append(
                {"type": "SQS", "queue": esm.queue, "batch_size": esm.batch_size}
            )

    def _outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in (self.template.get("Outputs") or {}).items():
            cond = spec.get("Condition")
            if cond is not None and not self.resolver.condition(cond):
                continue
            try:
                out[name] = self.resolver.resolve(spec.get("Value"))
            except IntrinsicError as exc:
                out[name] = None
                log.debug("output %s not resolvable locally: %s", name, exc)
        return out


_loader_lock = threading.Lock()
_shared_loader: Any = None


def new_session(region: str) -> Any:
    """A fresh boto3 session (it reads AWS_ENDPOINT_URL and credentials now) that shares one botocore
    data loader with earlier ones: parsing the service models is most of a provisioning run otherwise."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    _register_shared_loader(core)
    return boto3.session.Session(botocore_session=core, region_name=region)


def share_data_loader(session: Any) -> Any:
    """Give an existing boto3 session (e.g. `chatbot.aws.session()`) the shared botocore data loader, so
    its first clients reuse the service models provisioning already parsed (~0.05 s instead of ~0.3 s
    for a handler's first DynamoDB + Secrets Manager clients). Must run before the session makes a client."""
    core = getattr(session, "_session", None)  # boto3 keeps its botocore session here, with no accessor
    if core is not None:
        _register_shared_loader(core)
    return session


def _register_shared_loader(core: Any) -> None:
    global _shared_loader
    import botocore.loaders

    with _loader_lock:
        if _shared_loader is None:
            _shared_loader = botocore.loaders.create_loader()
        core.register_component("data_loader", _shared_loader)


def prepare(
    template_path: str | Path,
    *,
    parameters: dict[str, Any] | None = None,
    region: str = DEFAULT_REGION,
    include_types: Collection[str] | None = None,
) -> None:
    """Do provisioning's local work ahead (translate the template, load the AWS service models), e.g.
    while the emulator boots; `provision` is then mostly the emulator calls."""
    _, transformed = load_and_transform(template_path, parameters=parameters, region=region)
    services = {
        _CLIENT_FOR_TYPE[r["Type"]]
        for r in (transformed.get("Resources") or {}).values()
        if r["Type"] in _CLIENT_FOR_TYPE and (include_types is None or r["Type"] in include_types)
    }
    session = new_session(region)
    for service in sorted(services):
        session.client(service, region_name=region)


def _module_for(base_dir: Path, code_dir: Path | None, module_part: str) -> tuple[str, Path | None]:
    rel_module = module_part.replace("/", ".")
    if code_dir is None:
        return rel_module, None
    handler_file = code_dir / (rel_module.replace(".", "/") + ".py")
    try:
        rel = code_dir.relative_to(base_dir)
        prefix = ".".join(p for p in rel.parts if p not in ("", "."))
    except ValueError:
        prefix = ""
    return (f"{prefix}.{rel_module}" if prefix else rel_module), handler_file


def _cors_from_properties(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """AWS::ApiGatewayV2::Api CorsConfiguration (PascalCase) in the OpenAPI extension's camelCase."""
    if not config:
        return None
    return {key[0].lower() + key[1:]: value for key, value in config.items()}


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def _json_or_none(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _truthy(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


# --- recorded resources (no AWS call) -----------------------------------------------------------------


def _record(p: _Provisioner, lid: str, rtype: str, props: dict[str, Any]) -> Resource:
    res = Resource(lid, rtype, physical_id=p.name(lid, None), properties=props, status="recorded")
    if rtype == "AWS::Lambda::Function":
        res.physical_id = p.name(lid, props.get("FunctionName"))
        res.arn = p.arn("lambda", f"function:{res.physical_id}")
    elif rtype == "AWS::Lambda::LayerVersion":
        name = p.name(lid, props.get("LayerName"))
        res.arn = p.arn("lambda", f"layer:{name}:1")
        res.physical_id = res.arn
        res.attrs["LayerVersionArn"] = res.arn
    elif rtype == "AWS::Lambda::Version":
        fn = str(props.get("FunctionName", ""))
        res.arn = res.physical_id = f"{_function_arn(p, fn)}:1"
        res.attrs["Version"] = "1"
        res.attrs["FunctionArn"] = _function_arn(p, fn)
    elif rtype == "AWS::Lambda::Alias":
        fn = str(props.get("FunctionName", ""))
        res.arn = res.physical_id = f"{_function_arn(p, fn)}:{props.get('Name', 'live')}"
        res.attrs["AliasArn"] = res.arn
    elif rtype == "AWS::Lambda::Url":
        res.physical_id = f"https://{p.short_id(lid, 32)}.lambda-url.{p.region}.on.aws/"
        res.attrs.update(FunctionUrl=res.physical_id, FunctionArn=str(props.get("TargetFunctionArn", "")))
    elif rtype == "AWS::Lambda::EventSourceMapping":
        res.physical_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{p.stack_name}/{lid}"))
        res.attrs["Id"] = res.physical_id
        res.arn = p.arn("lambda", f"event-source-mapping:{res.physical_id}")
    elif rtype == "AWS::IAM::Role":
        res.physical_id = p.name(lid, props.get("RoleName"))
        res.arn = p.arn("iam", f"role{props.get('Path', '/')}{res.physical_id}", region=False)
        res.attrs["RoleId"] = "AROA" + p.short_id(lid, 17).upper()
    elif rtype == "AWS::IAM::ManagedPolicy":
        res.physical_id = p.arn("iam", f"policy/{p.name(lid, props.get('ManagedPolicyName'))}", region=False)
        res.arn = res.physical_id
        res.attrs["PolicyArn"] = res.arn
    elif rtype in ("AWS::Events::Rule", "AWS::Scheduler::Schedule"):
        res.physical_id = p.name(lid, props.get("Name"))
        service, pattern = _ARN_SERVICE[rtype]
        res.arn = p.arn(
            service, pattern.format(name=res.physical_id, group=props.get("GroupName", "default"))
        )
    elif rtype == "AWS::ApiGatewayV2::Api":
        res.physical_id = p.short_id(lid)
        res.attrs["ApiEndpoint"] = f"https://{res.physical_id}.execute-api.{p.region}.amazonaws.com"
        res.arn = f"arn:aws:apigateway:{p.region}::/apis/{res.physical_id}"
    elif rtype == "AWS::ApiGatewayV2::Stage":
        res.physical_id = str(props.get("StageName", "$default"))
    elif rtype in (
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Authorizer",
    ):
        res.physical_id = p.short_id(lid, 7)
    elif rtype == "AWS::KMS::Key":
        res.physical_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{p.stack_name}/{lid}"))
        res.arn = p.arn("kms", f"key/{res.physical_id}")
        res.attrs["KeyId"] = res.physical_id
    elif rtype == "AWS::CloudFront::Distribution":
        res.physical_id = "E" + p.short_id(lid, 13).upper()
        res.attrs["DomainName"] = f"d{p.short_id(lid, 13)}.cloudfront.net"
        res.attrs["Id"] = res.physical_id
    elif rtype == "AWS::CertificateManager::Certificate":
        res.physical_id = res.arn = p.arn("acm", f"certificate/{uuid.uuid5(uuid.NAMESPACE_URL, lid)}")
    elif rtype == "AWS::SecretsManager::RotationSchedule":
        res.physical_id = str(props.get("SecretId", ""))
    else:
        service = rtype.split("::")[1].lower() if rtype.count("::") == 2 else "local"
        res.arn = p.arn(service, f"{rtype.rsplit('::', 1)[-1].lower()}/{res.physical_id}")
    return res


def _record_named(p: _Provisioner, lid: str, rtype: str, props: dict[str, Any]) -> Resource:
    """A data resource left out by `include_types`: the name and ARN it would have, no AWS call."""
    name_key = _NAME_PROPERTY.get(rtype)
    lower = rtype == "AWS::S3::Bucket"
    name = p.name(lid, props.get(name_key) if name_key else None, lower=lower)
    res = Resource(lid, rtype, physical_id=name, properties=props, status="recorded")
    if rtype == "AWS::SQS::Queue":
        if _truthy(props.get("FifoQueue", False)) and not name.endswith(".fifo"):
            name += ".fifo"
        res.arn = p.arn("sqs", name)
        res.physical_id = f"https://sqs.{p.region}.amazonaws.com/{p.account_id}/{name}"
        res.attrs = {"Arn": res.arn, "QueueUrl": res.physical_id, "QueueName": name}
    elif rtype == "AWS::DynamoDB::Table":
        res.arn = p.arn("dynamodb", f"table/{name}")
    elif rtype == "AWS::SecretsManager::Secret":
        res.arn = res.physical_id = p.arn("secretsmanager", f"secret:{name}")
    elif rtype == "AWS::S3::Bucket":
        res.arn = f"arn:aws:s3:::{name}"
    elif rtype == "AWS::Logs::LogGroup":
        res.arn = p.arn("logs", f"log-group:{name}:*")
    elif rtype == "AWS::SNS::Topic":
        res.arn = res.physical_id = p.arn("sns", name)
        res.attrs = {"TopicArn": res.arn, "TopicName": name}
    elif rtype in _ARN_SERVICE:
        service, pattern = _ARN_SERVICE[rtype]
        res.arn = p.arn(service, pattern.format(name=name, group="default"))
    return res


_NAME_PROPERTY = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Logs::MetricFilter": "FilterName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SSM::Parameter": "Name",
}


def _function_arn(p: _Provisioner, name_or_arn: str) -> str:
    return name_or_arn if name_or_arn.startswith("arn:") else p.arn("lambda", f"function:{name_or_arn}")


# --- data resources (created in the emulator) ---------------------------------------------------------


def _sqs_queue(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    sqs = p._client("sqs")
    fifo = _truthy(props.get("FifoQueue", False))
    name = p.name(lid, props.get("QueueName"), max_len=75 if fifo else 80)
    if fifo and not name.endswith(".fifo"):
        name += ".fifo"
    attributes: dict[str, str] = {}
    for key in (
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled",
    ):
        if key in props:
            attributes[key] = _env_text(props[key])
    for key in ("RedrivePolicy", "RedriveAllowPolicy"):
        if key in props:
            policy = props[key]
            if isinstance(policy, str):
                policy = json.loads(policy)
            if "maxReceiveCount" in policy:
                policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
            attributes[key] = json.dumps(policy)
    status = "created"
    create_attrs = {**attributes, **({"FifoQueue": "true"} if fifo else {})}
    try:
        url = sqs.create_queue(QueueName=name, Attributes=create_attrs)["QueueUrl"]
    except sqs.exceptions.QueueNameExists:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        if attributes:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        status = "existing"
    arn = p.arn("sqs", name)
    return Resource(
        lid,
        "AWS::SQS::Queue",
        physical_id=url,
        arn=arn,
        attrs={"Arn": arn, "QueueUrl": url, "QueueName": name},
        properties=props,
        status=status,
    )


def _sqs_queue_policy(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    sqs = p._client("sqs")
    document = props.get("PolicyDocument") or {}
    for url in props.get("Queues") or []:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(document)})
    return Resource(lid, "AWS::SQS::QueuePolicy", physical_id=p.name(lid, None), properties=props)


def _dynamodb_table(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    ddb = p._client("dynamodb")
    name = p.name(lid, props.get("TableName"), max_len=255)
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if args["BillingMode"] == "PROVISIONED":
        args["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(key):
            indexes = []
            for index in props[key]:
                idx = {k: v for k, v in index.items() if k != "ContributorInsightsSpecification"}
                if key == "GlobalSecondaryIndexes" and args["BillingMode"] == "PROVISIONED":
                    idx["ProvisionedThroughput"] = _throughput(idx.get("ProvisionedThroughput"))
                indexes.append(idx)
            args[key] = indexes
    stream = props.get("StreamSpecification")
    if stream:
        args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    sse = props.get("SSESpecification")
    if sse and not p.lean:
        args["SSESpecification"] = {
            k2: sse[k1]
            for k1, k2 in (
                ("SSEEnabled", "Enabled"),
                ("SSEType", "SSEType"),
                ("KMSMasterKeyId", "KMSMasterKeyId"),
            )
            if k1 in sse
        }
    if props.get("Tags"):
        args["Tags"] = props["Tags"]
    if "DeletionProtectionEnabled" in props:
        args["DeletionProtectionEnabled"] = _truthy(props["DeletionProtectionEnabled"])
    if props.get("TableClass"):
        args["TableClass"] = props["TableClass"]
    status = "created"
    # The first encrypted table makes the emulator create DynamoDB's default KMS key; tables created
    # concurrently would each race to create one (seconds of key generation), so one goes first.
    first = p.first_table.acquire(blocking=False)
    if not first:
        p.first_table_done.wait(30)
    try:
        desc = ddb.create_table(**args)["TableDescription"]
    except ddb.exceptions.ResourceInUseException:
        desc = ddb.describe_table(TableName=name)["Table"]
        status = "existing"
    finally:
        if first:
            p.first_table_done.set()
    ttl = props.get("TimeToLiveSpecification")
    pitr = props.get("PointInTimeRecoverySpecification")

    def settings() -> None:
        if ttl and _truthy(ttl.get("Enabled", False)):
            try:
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
            except Exception as exc:
                if _error_code(exc) != "ValidationException":  # "already enabled" on a restart is fine
                    raise
        if pitr and _truthy(pitr.get("PointInTimeRecoveryEnabled", False)):
            _optional(
                lambda: ddb.update_continuous_backups(
                    TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
                ),
                f"PITR for {name}",
            )

    p.later(settings)
    attrs = {"Arn": desc["TableArn"]}
    if desc.get("LatestStreamArn"):
        attrs["StreamArn"] = desc["LatestStreamArn"]
    return Resource(
        lid,
        "AWS::DynamoDB::Table",
        physical_id=name,
        arn=desc["TableArn"],
        attrs=attrs,
        properties=props,
        status=status,
    )


def _throughput(value: dict[str, Any] | None) -> dict[str, int]:
    value = value or {}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def generate_secret_string(spec: dict[str, Any]) -> str:
    """CloudFormation's GenerateSecretString, done locally with `secrets` (the emulator may lack it)."""
    length = int(spec.get("PasswordLength", 32))
    exclude = set(str(spec.get("ExcludeCharacters", "")))
    classes = []
    if not _truthy(spec.get("ExcludeLowercase", False)):
        classes.append(string.ascii_lowercase)
    if not _truthy(spec.get("ExcludeUppercase", False)):
        classes.append(string.ascii_uppercase)
    if not _truthy(spec.get("ExcludeNumbers", False)):
        classes.append(string.digits)
    if not _truthy(spec.get("ExcludePunctuation", False)):
        classes.append("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    if _truthy(spec.get("IncludeSpace", False)):
        classes.append(" ")
    classes = ["".join(c for c in cls if c not in exclude) for cls in classes]
    classes = [c for c in classes if c]
    if not classes:
        raise TemplateError("GenerateSecretString excludes every character")
    alphabet = "".join(classes)
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        required = _truthy(spec.get("RequireEachIncludedType", True)) and length >= len(classes)
        if not required or all(any(ch in cls for ch in value) for cls in classes):
            break
    template = spec.get("SecretStringTemplate")
    key = spec.get("GenerateStringKey")
    if template and key:
        doc = json.loads(template)
        doc[key] = value
        return json.dumps(doc)
    return value


def _secret(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    sm = p._client("secretsmanager")
    name = p.name(lid, props.get("Name"), max_len=256)
    if "SecretString" in props:
        value = _env_text(props["SecretString"])
    elif "GenerateSecretString" in props:
        value = generate_secret_string(props["GenerateSecretString"])
    else:
        value = generate_secret_string({})
    args: dict[str, Any] = {"Name": name, "SecretString": value}
    if props.get("Description"):
        args["Description"] = props["Description"]
    if props.get("Tags"):
        args["Tags"] = props["Tags"]
    status = "created"
    try:
        arn = sm.create_secret(**args)["ARN"]
    except sm.exceptions.ResourceExistsException:
        arn = sm.describe_secret(SecretId=name)["ARN"]  # keep its value: a restart must not reset secrets
        status = "existing"
    return Resource(
        lid,
        "AWS::SecretsManager::Secret",
        physical_id=arn,
        arn=arn,
        attrs={"Ref": arn, "Id": arn, "Name": name},
        properties={k: v for k, v in props.items() if k != "SecretString"},
        status=status,
    )


def _s3_bucket(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    s3 = p._client("s3")
    name = p.name(lid, props.get("BucketName"), max_len=63, lower=True)
    status = "created"
    try:
        if p.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": p.region})
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        status = "existing"
    versioning = props.get("VersioningConfiguration")
    if versioning:  # now, not later: versioning changes what writes do
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": versioning.get("Status", "Enabled")}
        )
    p.later(lambda: _bucket_settings(s3, name, props))
    arn = f"arn:aws:s3:::{name}"
    return Resource(
        lid,
        "AWS::S3::Bucket",
        physical_id=name,
        arn=arn,
        attrs={
            "Arn": arn,
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{p.region}.amazonaws.com",
            "DualStackDomainName": f"{name}.s3.dualstack.{p.region}.amazonaws.com",
            "WebsiteURL": f"http://{name}.s3-website-{p.region}.amazonaws.com",
        },
        properties=props,
        status=status,
    )


def _bucket_settings(s3: Any, name: str, props: dict[str, Any]) -> None:
    """Lifecycle, encryption, public access block, CORS, tags: no effect on what the code sees locally."""
    lifecycle = props.get("LifecycleConfiguration")
    if lifecycle and lifecycle.get("Rules"):
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in lifecycle["Rules"]]}
        )
    encryption = props.get("BucketEncryption")
    if encryption:
        rules = encryption.get("ServerSideEncryptionConfiguration") or []
        _optional(
            lambda: s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}),
            "bucket encryption",
        )
    pab = props.get("PublicAccessBlockConfiguration")
    if pab:
        _optional(
            lambda: s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration={k: _truthy(v) for k, v in pab.items()}
            ),
            "public access block",
        )
    cors = props.get("CorsConfiguration")
    if cors and cors.get("CorsRules"):
        cors_rules = [
            {("MaxAgeSeconds" if k == "MaxAge" else k): v for k, v in rule.items()}
            for rule in cors["CorsRules"]
        ]
        _optional(
            lambda: s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": cors_rules}), "CORS"
        )
    if props.get("Tags"):
        _optional(lambda: s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": props["Tags"]}), "tags")


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Status": rule.get("Status", "Enabled")}
    if rule.get("Id"):
        out["ID"] = rule["Id"]
    filt: dict[str, Any] = {}
    if "Prefix" in rule:
        filt["Prefix"] = rule["Prefix"]
    if rule.get("TagFilters"):
        tags = rule["TagFilters"]
        if len(tags) == 1 and not filt:
            filt["Tag"] = tags[0]
        else:
            filt = {"And": {**({"Prefix": filt["Prefix"]} if "Prefix" in filt else {}), "Tags": tags}}
    out["Filter"] = filt
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpirationDate" in rule:
        expiration["Date"] = rule["ExpirationDate"]
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = _truthy(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        out["Expiration"] = expiration
    nve = rule.get("NoncurrentVersionExpiration")
    if nve:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(nve["NoncurrentDays"]),
            **(
                {"NewerNoncurrentVersions": int(nve["NewerNoncurrentVersions"])}
                if "NewerNoncurrentVersions" in nve
                else {}
            ),
        }
    elif "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])
        }
    abort = rule.get("AbortIncompleteMultipartUpload")
    if abort:
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(abort["DaysAfterInitiation"])}
    if rule.get("Transitions"):
        out["Transitions"] = [
            {
                "StorageClass": t["StorageClass"],
                **({"Days": int(t["TransitionInDays"])} if "TransitionInDays" in t else {}),
            }
            for t in rule["Transitions"]
        ]
    return out


def _s3_bucket_policy(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    s3 = p._client("s3")
    bucket = str(props["Bucket"])
    document = dict(props.get("PolicyDocument") or {})
    # The emulator speaks plain HTTP, which a "deny without TLS" statement would refuse for every request
    # (moto enforces it): keep the template's other statements only.
    document["Statement"] = [s for s in document.get("Statement") or [] if not _denies_plain_http(s)]
    if document["Statement"]:
        _optional(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(document)), "bucket policy")
    return Resource(lid, "AWS::S3::BucketPolicy", physical_id=bucket, properties=props)


def _denies_plain_http(statement: Mapping[str, Any]) -> bool:
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    return statement.get("Effect") == "Deny" and str(condition.get("aws:SecureTransport")).lower() == "false"


def _optional(call: Callable[[], Any], what: str) -> None:
    """A setting the emulator may not implement must not stop the local stack."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001
        log.debug("%s not applied locally: %s", what, exc)


def _log_group(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    logs = p._client("logs")
    name = p.name(lid, props.get("LogGroupName"), max_len=512)
    status = _ensure_log_group(logs, name)
    if props.get("RetentionInDays"):
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    arn = p.arn("logs", f"log-group:{name}:*")
    return Resource(
        lid,
        "AWS::Logs::LogGroup",
        physical_id=name,
        arn=arn,
        attrs={"Arn": arn},
        properties=props,
        status=status,
    )


def _ensure_log_group(logs: Any, name: str) -> str:
    try:
        logs.create_log_group(logGroupName=name)
        return "created"
    except logs.exceptions.ResourceAlreadyExistsException:
        return "existing"


def _metric_filter(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    logs = p._client("logs")
    group = str(props["LogGroupName"])
    name = p.name(lid, props.get("FilterName"), max_len=512)
    transformations = []
    for t in props.get("MetricTransformations") or []:
        item: dict[str, Any] = {
            "metricName": t["MetricName"],
            "metricNamespace": t["MetricNamespace"],
            "metricValue": str(t["MetricValue"]),
        }
        if "DefaultValue" in t:
            item["defaultValue"] = float(t["DefaultValue"])
        if t.get("Dimensions"):
            item["dimensions"] = {d["Key"]: d["Value"] for d in t["Dimensions"]}
        if t.get("Unit"):
            item["unit"] = t["Unit"]
        transformations.append(item)
    args = {
        "logGroupName": group,
        "filterName": name,
        "filterPattern": str(props.get("FilterPattern", "")),
        "metricTransformations": transformations,
    }
    # PutMetricFilter replaces a filter of the same name on AWS; moto appends a duplicate instead, so a
    # restart against a persisted emulator deletes the old one first (same end state as AWS).
    with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
        logs.delete_metric_filter(logGroupName=group, filterName=name)
    try:
        logs.put_metric_filter(**args)
    except logs.exceptions.ResourceNotFoundException:
        # A filter on a function's implicit /aws/lambda/... group, which Lambda creates on first run.
        _ensure_log_group(logs, group)
        logs.put_metric_filter(**args)
    return Resource(lid, "AWS::Logs::MetricFilter", physical_id=name, properties=props)


_ALARM_KEYS = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Unit",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "ThresholdMetricId",
    "Tags",
)


def _alarm(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    cw = p._client("cloudwatch")
    name = p.name(lid, props.get("AlarmName"), max_len=255)
    args: dict[str, Any] = {"AlarmName": name}
    for key in _ALARM_KEYS:
        if key in props:
            args[key] = props[key]
    if "ActionsEnabled" in args:
        args["ActionsEnabled"] = _truthy(args["ActionsEnabled"])
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in props:
            args[key] = int(props[key])
    if "Threshold" in props:
        args["Threshold"] = float(props["Threshold"])
    if props.get("Metrics"):
        metrics = []
        for m in props["Metrics"]:
            q = dict(m)
            if "ReturnData" in q:
                q["ReturnData"] = _truthy(q["ReturnData"])
            if "Period" in q:
                q["Period"] = int(q["Period"])
            stat = q.get("MetricStat")
            if stat and "Period" in stat:
                q["MetricStat"] = {**stat, "Period": int(stat["Period"])}
            metrics.append(q)
        args["Metrics"] = metrics
    cw.put_metric_alarm(**args)
    arn = p.arn("cloudwatch", f"alarm:{name}")
    return Resource(
        lid, "AWS::CloudWatch::Alarm", physical_id=name, arn=arn, attrs={"Arn": arn}, properties=props
    )


def _composite_alarm(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    cw = p._client("cloudwatch")
    name = p.name(lid, props.get("AlarmName"), max_len=255)
    args = {k: v for k, v in props.items() if k != "AlarmName"}
    _optional(lambda: cw.put_composite_alarm(AlarmName=name, **args), "composite alarm")
    arn = p.arn("cloudwatch", f"alarm:{name}")
    return Resource(
        lid,
        "AWS::CloudWatch::CompositeAlarm",
        physical_id=name,
        arn=arn,
        attrs={"Arn": arn},
        properties=props,
    )


def _dashboard(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    cw = p._client("cloudwatch")
    name = p.name(lid, props.get("DashboardName"), max_len=255)
    body = props.get("DashboardBody", "{}")
    cw.put_dashboard(DashboardName=name, DashboardBody=body if isinstance(body, str) else json.dumps(body))
    return Resource(lid, "AWS::CloudWatch::Dashboard", physical_id=name, properties=props)


def _sns_topic(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    sns = p._client("sns")
    fifo = _truthy(props.get("FifoTopic", False))
    name = p.name(lid, props.get("TopicName"), max_len=251 if fifo else 256)
    if fifo and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {
        k: _env_text(props[k])
        for k in ("DisplayName", "FifoTopic", "ContentBasedDeduplication", "KmsMasterKeyId")
        if k in props
    }
    arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
    for sub in props.get("Subscription") or []:
        sns.subscribe(TopicArn=arn, Protocol=sub["Protocol"], Endpoint=str(sub["Endpoint"]))
    return Resource(
        lid,
        "AWS::SNS::Topic",
        physical_id=arn,
        arn=arn,
        attrs={"Ref": arn, "TopicArn": arn, "TopicName": name},
        properties=props,
    )


def _sns_subscription(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    sns = p._client("sns")
    attributes = {}
    for key in ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy"):
        if key in props:
            value = props[key]
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
    if "RawMessageDelivery" in props:
        attributes["RawMessageDelivery"] = _env_text(props["RawMessageDelivery"])
    args: dict[str, Any] = {
        "TopicArn": props["TopicArn"],
        "Protocol": props["Protocol"],
        "Endpoint": str(props.get("Endpoint", "")),
        "ReturnSubscriptionArn": True,
    }
    if attributes:
        args["Attributes"] = attributes
    arn = sns.subscribe(**args)["SubscriptionArn"]
    return Resource(lid, "AWS::SNS::Subscription", physical_id=arn, arn=arn, properties=props)


def _ssm_parameter(p: _Provisioner, lid: str, props: dict[str, Any]) -> Resource:
    ssm = p._client("ssm")
    name = p.name(lid, props.get("Name"), max_len=1011)
    ssm.put_parameter(Name=name, Value=str(props["Value"]), Type=props.get("Type", "String"), Overwrite=True)
    return Resource(
        lid,
        "AWS::SSM::Parameter",
        physical_id=name,
        arn=p.arn("ssm", f"parameter/{name.lstrip('/')}"),
        attrs={"Type": props.get("Type", "String"), "Value": str(props["Value"])},
        properties=props,
    )


_CREATORS: dict[str, Callable[[_Provisioner, str, dict[str, Any]], Resource]] = {
    "AWS::SQS::Queue": _sqs_queue,
    "AWS::SQS::QueuePolicy": _sqs_queue_policy,
    "AWS::DynamoDB::Table": _dynamodb_table,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::S3::Bucket": _s3_bucket,
    "AWS::S3::BucketPolicy": _s3_bucket_policy,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::Logs::MetricFilter": _metric_filter,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CloudWatch::CompositeAlarm": _composite_alarm,
    "AWS::CloudWatch::Dashboard": _dashboard,
    "AWS::SNS::Topic": _sns_topic,
    "AWS::SNS::Subscription": _sns_subscription,
    "AWS::SSM::Parameter": _ssm_parameter,
}

# Exported for tests and tools: which template types end up as real emulator resources.
DATA_TYPES = frozenset(_CREATORS)
# What the functions' code touches at run time (the fast subset for unit tests' in-process AWS).
RUNTIME_TYPES = frozenset(
    {
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
        "AWS::DynamoDB::Table",
        "AWS::SecretsManager::Secret",
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Topic",
        "AWS::SSM::Parameter",
    }
)
OBSERVABILITY_TYPES = DATA_TYPES - RUNTIME_TYPES
RECORDED_TYPES = frozenset(_RECORDED_TYPES)
