"""Properties, and the per-instance document written from them (pure: no I/O).

The Properties are v0.5's: a Terraform JSON document ``{"resource": {TYPE: {NAME: {…}}}}``.
Any resource type works. The *instance* is the resource marked ``"@instance": true``, else
the first one. Provisioning instance ``instance-N`` writes the document with:

- the instance resource renamed ``instance-N`` and every other one ``instance-N-NAME`` (as
  v0.5 did), references between them (``terraform_data.helper.id``) following the rename;
- ``{{ var "/self/instId" }}`` (v0.5's template), ``/self/logicalId`` and ``/self/init``
  replaced in every string;
- the tags where the type keeps them (:mod:`.tags`), and Init where v0.5 put it for its five
  VM types (``user_data`` …);
- ``INFRAKIT_INSTANCE_ID``, ``INFRAKIT_LOGICAL_ID`` and ``INFRAKIT_TAG_*`` in the
  ``environment`` of every ``local-exec`` provisioner;
- our metadata: a ``terraform_data`` resource ``infrakit-instance-N`` whose ``input`` holds the
  tags, the logical ID and the rest of the document as text. It puts the tags of types that
  have no tags attribute somewhere, and it puts the whole document into Terraform's state,
  so that a plugin on another host sharing the backend can write the file again
  (:func:`restore`) instead of letting its apply destroy what it has no file for.
"""

from __future__ import annotations

import base64
import copy
import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infrakit import errors
from infrakit.plugins import environment
from infrakit.plugins.instance.terraform import tags as tagging
from infrakit.spi import instance

MARK = "@instance"
"""The key that marks a resource block as the instance."""
META_TYPE = "terraform_data"
META_PREFIX = "infrakit-"
PLUGIN = "instance-terraform"
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_VAR = re.compile(r'\{\{-?\s*var\s*\(?\s*"(/self/(?:instId|logicalId|init))"\s*\)?\s*-?\}\}')
_INIT_AT = {"aws_instance": "user_data", "digitalocean_droplet": "user_data",
            "softlayer_virtual_guest": "user_metadata",
            "google_compute_instance": "metadata_startup_script"}
"""Where v0.5 put Init, for its VM types (Azure's is nested: see :func:`_place_init`)."""
_BASE64 = frozenset({"aws_instance", "digitalocean_droplet"})


@dataclass(frozen=True, slots=True)
class Resource:
    type: str
    name: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Properties:
    """Parsed Properties: the resources in document order, and which one is the instance."""

    resources: tuple[Resource, ...]
    main: int

    @property
    def instance(self) -> Resource:
        return self.resources[self.main]


@dataclass(frozen=True, slots=True)
class Found:
    """An instance as its document says."""

    id: instance.ID
    type: str
    """The instance resource's type (its address is ``<type>.<id>``)."""
    logical_id: instance.LogicalID | None
    tags: dict[str, str]
    addresses: tuple[str, ...]
    """Every resource of the document (for a targeted destroy)."""

    @property
    def address(self) -> str:
        return f"{self.type}.{self.id}"


def parse(raw: Any) -> Properties:
    """The Properties, checked; ``InvalidError`` naming the field that is wrong."""
    expected = 'expected a Terraform JSON document {"resource": {TYPE: {NAME: {...}}}}'
    if not isinstance(raw, dict):
        raise _invalid("Properties", expected)
    for key in raw:
        if key != "resource":
            hint = "; did you mean resource?" if difflib.get_close_matches(
                key, ["resource"]) else ""
            raise _invalid(f"Properties.{key}", 'not supported; only "resource" is (each '
                           f"instance gets its own copy of its resources){hint}")
    section = raw.get("resource")
    if not isinstance(section, dict) or not section:
        raise _invalid("Properties.resource", f"required, an object; {expected}")
    resources: list[Resource] = []
    marked: list[int] = []
    for kind, named in section.items():
        where = f"Properties.resource.{kind}"
        if not _TYPE.match(kind):
            raise _invalid(where, "not a resource type: expected letters, digits, _ and -")
        if not isinstance(named, dict) or not named:
            raise _invalid(where, "expected an object of resources by name")
        for name, body in named.items():
            here = f"{where}.{name}"
            if not _NAME.match(name):
                raise _invalid(here, "not a resource name: expected a letter or _, then "
                               "letters, digits, _ and -")
            if not isinstance(body, dict):
                raise _invalid(here, "expected an object (the resource's arguments)")
            if kind == META_TYPE and name.startswith(META_PREFIX):
                raise _invalid(here, f"names starting {META_PREFIX!r} are the plugin's own")
            mark = body.get(MARK, False)
            if not isinstance(mark, bool):
                raise _invalid(f"{here}.{MARK}", "expected true or false")
            if mark:
                marked.append(len(resources))
            resources.append(Resource(kind, name, body))
    if len(marked) > 1:
        names = ", ".join(f"{resources[i].type}.{resources[i].name}" for i in marked)
        raise _invalid("Properties.resource", f"{MARK} marks more than one resource ({names}); "
                       "expected one instance")
    return Properties(resources=tuple(resources), main=marked[0] if marked else 0)


def build(properties: Properties, spec: instance.Spec, iid: instance.ID, *,
          tag_style: Callable[[str], tagging.Style | None]) -> dict[str, Any]:
    """The document of instance ``iid`` provisioned from ``spec``."""
    logical = spec.logical_id
    values = {"/self/instId": iid, "/self/logicalId": logical or "", "/self/init": spec.init}
    tags = dict(spec.tags)
    if not any(key.lower() == "name" for key in tags):
        tags["Name"] = iid  # as v0.5 did
    if logical is not None:
        tags["LogicalID"] = logical
    names = {(r.type, r.name): (iid if i == properties.main else f"{iid}-{r.name}")
             for i, r in enumerate(properties.resources)}
    document: dict[str, Any] = {"resource": {}}
    for index, resource in enumerate(properties.resources):
        body = _substitute(copy.deepcopy(resource.body), values, names)
        body.pop(MARK, None)
        if index == properties.main:
            _hostname(resource.type, body, logical or iid)
            tagging.put(resource.type, body, tags, style=tag_style(resource.type) or
                        tagging.guess(resource.type, body))
            _private_ip(resource.type, body, logical)
            _place_init(resource.type, body, spec.init)
        _environment(body, environment.for_instance(iid, logical_id=logical, tags=tags))
        document["resource"].setdefault(resource.type, {})[names[resource.type,
                                                                  resource.name]] = body
    return with_metadata(document, iid, logical_id=logical, tags=tags)


def with_metadata(document: dict[str, Any], iid: str, *, logical_id: str | None,
                  tags: dict[str, str]) -> dict[str, Any]:
    """``document`` (without metadata) with our metadata resource added."""
    data = {"Plugin": PLUGIN, "ID": iid, "LogicalID": logical_id, "Tags": tags,
            "Document": json.dumps(document, sort_keys=True)}
    out = copy.deepcopy(document)
    out["resource"].setdefault(META_TYPE, {})[META_PREFIX + iid] = {"input": _escape(data)}
    return out


def without_metadata(document: dict[str, Any], iid: str) -> dict[str, Any]:
    out = copy.deepcopy(document)
    section = out.get("resource") or {}
    section.get(META_TYPE, {}).pop(META_PREFIX + iid, None)
    if META_TYPE in section and not section[META_TYPE]:
        del section[META_TYPE]
    return out


def read(iid: instance.ID, document: dict[str, Any]) -> Found | None:
    """What ``document`` says of instance ``iid`` (ours, or a v0.5 file: the instance is
    the resource named ``iid``); ``None`` when it has no such resource."""
    section = document.get("resource")
    if not isinstance(section, dict):
        return None
    addresses, kind = [], None
    for type_, named in section.items():
        if isinstance(named, dict):
            addresses += [f"{type_}.{name}" for name in named]
            if iid in named and isinstance(named[iid], dict):
                kind = type_
    if kind is None:
        return None
    meta = metadata(iid, document)
    if meta is not None:
        tags, logical = meta.tags, meta.logical_id
    else:
        tags = tagging.read(section[kind][iid])
        logical = tagging.logical_id(tags)
    return Found(id=iid, type=kind, logical_id=logical, tags=tags,
                 addresses=tuple(sorted(addresses)))


@dataclass(frozen=True, slots=True)
class Metadata:
    """What our metadata resource holds."""

    logical_id: instance.LogicalID | None
    tags: dict[str, str]
    document: dict[str, Any]
    """The instance's document without the metadata resource."""


def metadata(iid: str, document: dict[str, Any]) -> Metadata | None:
    """The metadata in an instance's file (``None``: a v0.5 file, or not ours)."""
    block = ((document.get("resource") or {}).get(META_TYPE) or {}).get(META_PREFIX + iid)
    if not isinstance(block, dict):
        return None
    return from_input(_unescape(block.get("input")))


def from_input(data: Any) -> Metadata | None:
    """The metadata from its resource's ``input`` (as the state holds it, unescaped)."""
    if not isinstance(data, dict) or data.get("Plugin") != PLUGIN:
        return None
    try:
        document = json.loads(data["Document"])
        raw_tags = data.get("Tags") or {}
        tags = {str(key): str(value) for key, value in raw_tags.items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    logical = data.get("LogicalID")
    return Metadata(logical_id=instance.LogicalID(logical) if logical else None, tags=tags,
                    document=document if isinstance(document, dict) else {"resource": {}})


def restore(iid: instance.ID, meta: Metadata) -> dict[str, Any]:
    """Instance ``iid``'s file again, from the metadata its state holds."""
    return with_metadata(meta.document, iid, logical_id=meta.logical_id, tags=meta.tags)


def relabel(iid: instance.ID, document: dict[str, Any], labels: dict[str, str], *,
            tag_style: Callable[[str], tagging.Style | None]) -> dict[str, Any]:
    """``document`` with ``labels`` merged into the instance's tags (``NotFoundError`` when
    it has no instance ``iid``)."""
    found = read(iid, document)
    if found is None:
        raise errors.NotFoundError(f"instance {iid}: its file has no resource named {iid}",
                                   instance=iid)
    tags = {**found.tags, **labels}
    meta = metadata(iid, document)
    plain = without_metadata(document, iid)
    body = plain["resource"][found.type][iid]
    style = tag_style(found.type) or tagging.guess(found.type, body)
    if style != "none" or meta is None:
        tagging.put(found.type, body, labels, style=style if style != "none" else "map")
    if meta is None:
        return plain  # a v0.5 file stays a v0.5 file
    return with_metadata(plain, iid, logical_id=found.logical_id, tags=tags)


# Steps of build ----------------------------------------------------------------------------

def _substitute(value: Any, values: dict[str, str],
                names: dict[tuple[str, str], str]) -> Any:
    """Placeholders replaced and references to renamed resources followed, in every string."""
    if isinstance(value, str):
        text = _VAR.sub(lambda match: values[match.group(1)], value)
        for (kind, name), new in names.items():
            if f"{kind}.{name}" in text:
                text = re.sub(rf"(?<![\w.-]){re.escape(kind)}\.{re.escape(name)}(?![\w-])",
                              f"{kind}.{new}", text)
        return text
    if isinstance(value, list):
        return [_substitute(item, values, names) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, values, names) for key, item in value.items()}
    return value


def _hostname(kind: str, body: dict[str, Any], name: str) -> None:
    """SoftLayer's hostname, with v0.5's ``@hostname_prefix``."""
    prefix = body.pop("@hostname_prefix", None)
    if kind != "softlayer_virtual_guest":
        return
    if isinstance(prefix, str) and prefix.strip():
        body["hostname"] = f"{prefix.strip()}-{name.replace('instance-', '')}"
    else:
        body["hostname"] = name


def _private_ip(kind: str, body: dict[str, Any], logical: str | None) -> None:
    """v0.5: an AWS ``private_ip`` of ``INSTANCE_LOGICAL_ID`` is the pet's logical ID."""
    if kind == "aws_instance" and body.get("private_ip") == "INSTANCE_LOGICAL_ID":
        if logical is None:
            del body["private_ip"]
        else:
            body["private_ip"] = logical


def _place_init(kind: str, body: dict[str, Any], init: str) -> None:
    """Init where v0.5 put it (appended to what is there); other types reach it through
    ``{{ var "/self/init" }}``."""
    if kind == "azurerm_virtual_machine":
        profile = body.setdefault("os_profile", {})
        if isinstance(profile, dict):
            _append(profile, "custom_data", init)
        return
    key = _INIT_AT.get(kind)
    if key is None:
        return
    _append(body, key, init)
    if kind in _BASE64:
        body[key] = base64.b64encode(str(body[key]).encode()).decode()


def _append(body: dict[str, Any], key: str, init: str) -> None:
    body[key] = f"{body[key]}\n{init}" if key in body else init


def _environment(body: dict[str, Any], variables: dict[str, str]) -> None:
    """Add ``variables`` to each ``local-exec`` provisioner's environment (its own win)."""
    provisioners = body.get("provisioner")
    blocks: list[Any] = []
    if isinstance(provisioners, dict):
        blocks = [provisioners]
    elif isinstance(provisioners, list):
        blocks = provisioners
    for block in blocks:
        found = block.get("local-exec") if isinstance(block, dict) else None
        for step in found if isinstance(found, list) else [found]:
            if isinstance(step, dict):
                given = step.get("environment")
                step["environment"] = {**_escape(variables),
                                       **(given if isinstance(given, dict) else {})}


def _escape(value: Any) -> Any:
    """Literal text in Terraform JSON: ``${`` and ``%{`` doubled, so none is evaluated."""
    if isinstance(value, str):
        return value.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, list):
        return [_escape(item) for item in value]
    if isinstance(value, dict):
        return {key: _escape(item) for key, item in value.items()}
    return value


def _unescape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$${", "${").replace("%%{", "%{")
    if isinstance(value, list):
        return [_unescape(item) for item in value]
    if isinstance(value, dict):
        return {key: _unescape(item) for key, item in value.items()}
    return value


def _invalid(field: str, what: str) -> errors.InvalidError:
    return errors.InvalidError(f"{field}: {what}", field=field)
