"""template.yaml → plain CloudFormation, and the intrinsic functions the local stack needs to resolve it.

Loading keeps CloudFormation's short tags (`!Ref`, `!Sub`, `!GetAtt`, ...) as their long forms. The SAM
transform runs in-process with `samtranslator` (local `CodeUri`/`ContentUri` paths are rewritten to dummy
`s3://` URIs first, because the translator only accepts S3 locations; the original paths are kept so the
local runtime knows where each function's code lives). The transformed template is cached per template
content, so a restart does not pay for the translator again (and the local stack's emulator process can
translate a cold template while the stack imports its handlers: see `infra.local.emulator`).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

LOCAL_CODE_BUCKET = "local-code"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
NO_VALUE = object()  # AWS::NoValue: the enclosing key or list item disappears

_CACHE_VERSION = "1"
_CACHE_DIR_ENV = "LOCAL_CACHE_DIR"


class TemplateError(ValueError):
    """The template is missing, unreadable, not YAML, or not a valid SAM/CloudFormation template."""


# --- loading ------------------------------------------------------------------------------------------

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_Base):  # type: ignore[valid-type,misc]
    pass


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    # CloudFormation reads `AWSTemplateFormatVersion: 2010-09-09` as text, not as a date.
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _short_tag)
_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_template(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (or JSON) CloudFormation/SAM template; raise TemplateError with one readable line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"template not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"template {p} is unreadable: {exc.__class__.__name__}: {exc}") from None
    return parse_template(text, str(p))


def parse_template(text: str, name: str = "<template>") -> dict[str, Any]:
    try:
        doc = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TemplateError(f"template {name} is not valid YAML{where}: {problem}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict) or not doc["Resources"]:
        raise TemplateError(f"template {name} has no Resources section")
    for logical_id, res in doc["Resources"].items():
        if not isinstance(res, dict) or not isinstance(res.get("Type"), str):
            raise TemplateError(f"template {name}: resource {logical_id} has no Type")
    return doc


# --- SAM transform ------------------------------------------------------------------------------------

_SAM_TYPES_WITH_CODE = {
    "AWS::Serverless::Function": ("CodeUri",),
    "AWS::Serverless::LayerVersion": ("ContentUri",),
    "AWS::Serverless::Api": ("DefinitionUri",),
    "AWS::Serverless::HttpApi": ("DefinitionUri",),
    "AWS::Serverless::StateMachine": ("DefinitionUri",),
}
_lock = threading.Lock()
_memo: dict[str, dict[str, Any]] = {}


def is_sam(template: dict[str, Any]) -> bool:
    transform = template.get("Transform")
    names = transform if isinstance(transform, list) else [transform]
    return any(isinstance(n, str) and n.startswith("AWS::Serverless") for n in names)


def code_locations(template: dict[str, Any]) -> dict[str, str]:
    """Logical id → local code path (relative to the template) of every SAM function and layer."""
    global_uri = template.get("Globals", {}).get("Function", {}).get("CodeUri")
    out: dict[str, str] = {}
    for logical_id, res in template["Resources"].items():
        props = res.get("Properties") or {}
        if res["Type"] == "AWS::Serverless::Function":
            uri = props.get("CodeUri", global_uri)
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            uri = props.get("ContentUri")
        else:
            continue
        if isinstance(uri, str) and not uri.startswith("s3://"):
            out[logical_id] = uri
    return out


def _rewrite_local_uris(template: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    tpl = copy.deepcopy(template)
    fn_globals = tpl.get("Globals", {}).get("Function", {})
    if isinstance(fn_globals.get("CodeUri"), str) and not fn_globals["CodeUri"].startswith("s3://"):
        fn_globals["CodeUri"] = _dummy_s3(fn_globals["CodeUri"])
    for res in tpl["Resources"].values():
        props = res.get("Properties")
        if not isinstance(props, dict):
            continue
        for key in _SAM_TYPES_WITH_CODE.get(res["Type"], ()):
            uri = props.get(key)
            if not isinstance(uri, str) or uri.startswith("s3://"):
                continue
            if key == "DefinitionUri":
                # A local OpenAPI/ASL file: inline it, as `sam build`/`sam package` would upload it.
                body_key = (
                    "Definition" if res["Type"] == "AWS::Serverless::StateMachine" else "DefinitionBody"
                )
                props[body_key] = load_template_fragment(base_dir / uri)
                del props[key]
            else:
                props[key] = _dummy_s3(uri)
    return tpl


def load_template_fragment(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from None


def _dummy_s3(uri: str) -> str:
    return f"s3://{LOCAL_CODE_BUCKET}/{uri.strip('/') or '.'}"


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs; locally there is no IAM to ask."""

    def load(self) -> dict[str, str]:
        return {}


def sam_transform(
    template: dict[str, Any], *, base_dir: Path, parameters: dict[str, Any] | None = None, region: str
) -> dict[str, Any]:
    """Translate a SAM template to plain CloudFormation (no network)."""
    if not is_sam(template):
        return copy.deepcopy(template)
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.transform import transform

    ArnGenerator.BOTO_SESSION_REGION_NAME = region
    params = {**default_parameter_values(template), **(parameters or {})}
    try:
        return transform(_rewrite_local_uris(template, base_dir), params, _NoManagedPolicies())  # type: ignore[arg-type]
    except InvalidDocumentException as exc:
        causes = "; ".join(str(getattr(c, "message", c)) for c in exc.causes) or str(exc)
        raise TemplateError(f"template is not a valid SAM template: {causes}") from None
    except Exception as exc:  # noqa: BLE001 - the translator raises many types; report them as one line
        raise TemplateError(f"SAM transform failed: {exc.__class__.__name__}: {exc}") from None


def load_and_transform(
    path: str | os.PathLike[str], *, parameters: dict[str, Any] | None = None, region: str = DEFAULT_REGION
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(source template, transformed template); both cached by content, in memory and on disk."""
    p = Path(path).resolve()
    key, cache_file = _cache_entry(p, parameters, region)
    with _lock:
        hit = _memo.get(key)
    if hit is not None:
        return _copy(hit["source"]), _copy(hit["transformed"])
    source = load_template(p)
    transformed: dict[str, Any] | None = None
    if cache_file.is_file():
        try:
            transformed = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            transformed = None
    if transformed is None:
        transformed = sam_transform(source, base_dir=p.parent, parameters=parameters, region=region)
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(transformed))
            tmp.replace(cache_file)
        except OSError:
            pass  # a read-only checkout only loses the cache
    with _lock:
        _memo[key] = {"source": _copy(source), "transformed": _copy(transformed)}
    return source, transformed


def _cache_entry(path: Path, parameters: dict[str, Any] | None, region: str) -> tuple[str, Path]:
    """(cache key, cache file) of a template's transform: by content, parameters, region, translator."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TemplateError(f"template not found: {path}") from None
    except OSError as exc:
        raise TemplateError(f"template {path} is unreadable: {exc}") from None
    key = hashlib.sha256(
        b"\0".join(
            [
                _CACHE_VERSION.encode(),
                raw,
                json.dumps(parameters or {}, sort_keys=True, default=str).encode(),
                region.encode(),
                _translator_version().encode(),
            ]
        )
    ).hexdigest()[:32]
    return key, _cache_dir(path) / f"template-{key}.json"


def is_transform_cached(
    path: str | os.PathLike[str], *, parameters: dict[str, Any] | None = None, region: str = DEFAULT_REGION
) -> bool:
    """True when `load_and_transform` would not run the translator (its result is in memory or on disk)."""
    try:
        key, cache_file = _cache_entry(Path(path).resolve(), parameters, region)
    except TemplateError:
        return False
    with _lock:
        if key in _memo:
            return True
    return cache_file.is_file()


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    # Templates hold only JSON values; a JSON round trip copies them several times faster than deepcopy.
    return json.loads(json.dumps(doc))  # type: ignore[no-any-return]


def _cache_dir(template_path: Path) -> Path:
    env = os.environ.get(_CACHE_DIR_ENV)
    return Path(env) if env else template_path.parent / ".local" / "cache"


@functools.cache
def _translator_version() -> str:
    try:
        from importlib.metadata import version

        return version("aws-sam-translator")
    except Exception:  # noqa: BLE001
        return "unknown"


def default_parameter_values(template: dict[str, Any]) -> dict[str, Any]:
    return {
        name: spec["Default"]
        for name, spec in (template.get("Parameters") or {}).items()
        if isinstance(spec, dict) and "Default" in spec
    }


# --- intrinsic functions ------------------------------------------------------------------------------

_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class IntrinsicError(ValueError):
    pass


class Resolver:
    """Resolves Ref / Fn::* against parameters, conditions, mappings and the resources created so far.

    `ref(logical_id)` and `get_att(logical_id, attribute)` are supplied by the provisioner, which knows
    physical ids and attributes only once a resource exists.
    """

    def __init__(
        self,
        template: dict[str, Any],
        *,
        stack_name: str,
        region: str,
        account_id: str,
        parameters: dict[str, Any] | None = None,
        ref: Callable[[str], Any] | None = None,
        get_att: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.mappings: dict[str, Any] = template.get("Mappings") or {}
        self._conditions_src: dict[str, Any] = template.get("Conditions") or {}
        self._conditions: dict[str, bool] = {}
        self._ref = ref
        self._get_att = get_att
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
            "AWS::NotificationARNs": [],
        }
        self.parameters = self._parameter_values(parameters or {})

    def _parameter_values(self, overrides: dict[str, Any]) -> dict[str, Any]:
        specs = self.template.get("Parameters") or {}
        unknown = set(overrides) - set(specs)
        if unknown:
            raise TemplateError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in specs.items():
            spec = spec if isinstance(spec, dict) else {}
            if name in overrides:
                value = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"template parameter {name} has no Default and no value was given")
            ptype = str(spec.get("Type", "String"))
            if ptype.startswith("List<") or ptype == "CommaDelimitedList":
                value = value if isinstance(value, list) else [v.strip() for v in str(value).split(",")]
            elif isinstance(value, bool):
                value = str(value).lower()
            else:
                value = str(value)
            allowed = spec.get("AllowedValues")
            if allowed and not isinstance(value, list) and value not in [str(a) for a in allowed]:
                raise TemplateError(f"template parameter {name}={value!r} is not one of {allowed}")
            values[name] = value
        return values

    # conditions

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self._conditions_src:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self._eval_condition(self._conditions_src[name]))
        return self._conditions[name]

    def _eval_condition(self, expr: Any) -> Any:
        if isinstance(expr, dict) and len(expr) == 1:
            ((fn, arg),) = expr.items()
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b) if not isinstance(a, list | dict) else a == b
            if fn == "Fn::Not":
                return not self._eval_condition(arg[0])
            if fn == "Fn::And":
                return all(self._eval_condition(x) for x in arg)
            if fn == "Fn::Or":
                return any(self._eval_condition(x) for x in arg)
        return self.resolve(expr)

    def active(self, logical_id: str) -> bool:
        cond = self.resources.get(logical_id, {}).get("Condition")
        return True if cond is None else self.condition(cond)

    # values

    def resolve(self, value: Any) -> Any:
        out = self._resolve(value)
        return None if out is NO_VALUE else out

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
        out = {}
        for k, v in value.items():
            r = self._resolve(v)
            if r is not NO_VALUE:
                out[k] = r
        return out

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            if self._ref is None:
                raise IntrinsicError(f"Ref {name}: resources are not available here")
            return self._ref(name)
        raise IntrinsicError(f"Ref to unknown name {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            raise IntrinsicError(f"Fn::GetAtt on unknown resource {logical_id}")
        if self._get_att is None:
            raise IntrinsicError(f"Fn::GetAtt {logical_id}.{attribute}: resources are not available here")
        return self._get_att(logical_id, attribute)

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                lid, attr = name.split(".", 1)
                return _text(self.get_att(lid, attr))
            return _text(self.ref(name))

        return _SUB_VAR.sub(repl, str(text))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


def _fn_get_att(r: Resolver, arg: Any) -> Any:
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    lid, attr = r.resolve(arg[0]), r.resolve(arg[1])
    return r.get_att(lid, attr)


def _fn_join(r: Resolver, arg: Any) -> str:
    sep, items = arg
    values = r.resolve(items)
    return str(sep).join(_text(v) for v in values)


def _fn_select(r: Resolver, arg: Any) -> Any:
    index, items = int(r.resolve(arg[0])), r.resolve(arg[1])
    try:
        return items[index]
    except (IndexError, TypeError):
        raise IntrinsicError(f"Fn::Select index {index} out of range") from None


def _fn_split(r: Resolver, arg: Any) -> list[str]:
    sep, text = arg
    return str(r.resolve(text)).split(str(sep))


def _fn_if(r: Resolver, arg: Any) -> Any:
    name, yes, no = arg
    return r._resolve(yes if r.condition(name) else no)


def _fn_find_in_map(r: Resolver, arg: Any) -> Any:
    name, top, second = (r.resolve(a) for a in arg[:3])
    try:
        return r.mappings[name][top][second]
    except KeyError:
        if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
            return r.resolve(arg[3]["DefaultValue"])
        raise IntrinsicError(f"Fn::FindInMap {name}/{top}/{second} not found") from None


def _fn_base64(r: Resolver, arg: Any) -> str:
    return base64.b64encode(str(r.resolve(arg)).encode()).decode()


def _fn_get_azs(r: Resolver, arg: Any) -> list[str]:
    region = r.resolve(arg) or r.pseudo["AWS::Region"]
    return [f"{region}{s}" for s in "abc"]


def _fn_to_json_string(r: Resolver, arg: Any) -> str:
    return json.dumps(r.resolve(arg), separators=(",", ":"))


def _fn_length(r: Resolver, arg: Any) -> int:
    return len(r.resolve(arg))


def _fn_import_value(r: Resolver, arg: Any) -> Any:
    raise IntrinsicError(f"Fn::ImportValue {r.resolve(arg)} is not supported locally")


def _fn_condition_value(r: Resolver, arg: Any) -> bool:
    return r.condition(arg)


_INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, a: r.ref(r.resolve(a) if isinstance(a, dict) else a),
    "Fn::GetAtt": _fn_get_att,
    "Fn::Sub": lambda r, a: r.sub(a),
    "Fn::Join": _fn_join,
    "Fn::Select": _fn_select,
    "Fn::Split": _fn_split,
    "Fn::If": _fn_if,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Base64": _fn_base64,
    "Fn::GetAZs": _fn_get_azs,
    "Fn::ToJsonString": _fn_to_json_string,
    "Fn::Length": _fn_length,
    "Fn::ImportValue": _fn_import_value,
    "Fn::Equals": lambda r, a: r._eval_condition({"Fn::Equals": a}),
    "Fn::Not": lambda r, a: r._eval_condition({"Fn::Not": a}),
    "Fn::And": lambda r, a: r._eval_condition({"Fn::And": a}),
    "Fn::Or": lambda r, a: r._eval_condition({"Fn::Or": a}),
    "Condition": _fn_condition_value,
}


def references(value: Any, resource_ids: Iterable[str]) -> set[str]:
    """Logical ids of resources `value` refers to (Ref, Fn::GetAtt, Fn::Sub variables), for ordering."""
    ids = set(resource_ids)
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            if len(v) == 1:
                ((k, a),) = v.items()
                if k == "Ref" and isinstance(a, str) and a in ids:
                    found.add(a)
                    return
                if k == "Fn::GetAtt":
                    lid = a.split(".", 1)[0] if isinstance(a, str) else a[0]
                    if isinstance(lid, str) and lid in ids:
                        found.add(lid)
                    return
                if k == "Fn::Sub":
                    text = a[0] if isinstance(a, list) else a
                    for name in _SUB_VAR.findall(str(text)):
                        base = name.split(".", 1)[0]
                        if base in ids and not name.startswith("!"):
                            found.add(base)
                    if isinstance(a, list) and len(a) > 1:
                        walk(a[1])
                    return
            for x in v.values():
                walk(x)

    walk(value)
    return found
