"""The ``instance-aws`` plugin: each instance is an EC2 instance.

Served by ``infrakit-instance-aws`` (:mod:`.serve`); tests call :class:`Plugin` directly.
Properties are :mod:`.properties`' (InfraKit's AWS plugin's ``RunInstancesInput`` and
``Tags``). The tags on the instances are the truth: the plugin keeps no state of its own,
so a restarted plugin finds everything it made.

- **Provision** is one RunInstances of one instance: the Init as user data, the Spec's
  tags (with ``Properties.Tags``, the namespace tags, :data:`MANAGED` and, for a pet,
  :data:`LOGICAL_ID`) on the instance and its volumes, set at launch; a LogicalID that is
  an IPv4 address is also the private IP. A failed attempt that may have launched anyway
  is followed by a look for its token before the next (:mod:`.tokens`): a retry never
  launches a second instance.
- **Describe** is one paginated DescribeInstances filtered by the tags (pages of
  :data:`PAGE`); terminated and shutting-down instances are left out, so the group
  replaces them. With properties, each instance is given as EC2 describes it.
- **Destroy** terminates; an instance already gone (or going) is done, and one InfraKit
  did not make (neither :data:`MANAGED` nor ``infrakit.group``) is refused.
- **Label** adds tags (CreateTags); ``aws:`` keys are EC2's own and refused.
- **Errors**: throttling, 5xx and unreachable EC2 are retried (:mod:`.retry`) then
  ``TemporaryError``; the rest as :mod:`.failures` says, one line naming the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
from dataclasses import dataclass
from typing import Any

from infrakit import errors
from infrakit.plugins.instance.aws import api, failures, properties, tokens
from infrakit.spi import instance

log = logging.getLogger(__name__)

MANAGED = "infrakit.instance-aws"
"""The tag on everything we launch; its value is the plugin's name."""
LOGICAL_ID = "infrakit.logical_id"
"""The tag of a pet's logical ID."""
GROUP = "infrakit.group"
"""The group plugin's membership tag (only read, to decide what we may destroy)."""
LIVE = ("pending", "running", "stopping", "stopped")
"""States Describe lists: all but shutting-down and terminated (those are gone)."""
GONE = frozenset({"shutting-down", "terminated"})
PAGE = 1000
"""Instances per DescribeInstances page (EC2's most)."""
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_WILDCARDS = re.compile(r"([*?\\])")


@dataclass
class _Launch:
    """One Provision's progress: its token, and whether an instance may carry it."""

    key: str
    token: str
    maybe: bool


class Plugin:
    """An instance plugin over EC2 (async methods)."""

    def __init__(self, ec2: api.Client, *, name: str = "instance-aws",
                 namespace: dict[str, str] | None = None) -> None:
        self.api = ec2
        self.name = name
        self.namespace = dict(namespace or {})
        """Tags put on every instance and required of every instance listed."""
        self.ledger = tokens.Ledger()

    def close(self) -> None:
        self.api.close()

    async def validate(self, properties: Any) -> None:
        self._check(properties)

    def _check(self, raw: Any) -> None:
        """Everything Provision would check of ``raw``, without sending anything."""
        props = properties.parse(raw)
        probe = instance.Spec(properties=raw, tags={GROUP: "validate"})
        request = properties.request(props, probe, tags=self._tags(probe, props))
        self.api.check("RunInstances", request, root=properties.ROOT)

    async def provision(self, spec: instance.Spec) -> instance.ID:
        props = properties.parse(spec.properties)
        request = properties.request(props, spec, tags=self._tags(spec, props))
        self.api.check("RunInstances", request, root=properties.ROOT)
        key = tokens.fingerprint(request)
        kept = self.ledger.take(key)
        launch = _Launch(key=key, token=kept or tokens.new(), maybe=kept is not None)
        try:
            iid = await self._launch(request, launch)
        except BaseException:
            if launch.maybe:  # the group will ask again: that Provision looks first
                self.ledger.keep(launch.key, launch.token)
            raise
        log.info("provisioned %s", iid)
        return instance.ID(iid)

    async def label(self, instance: instance.ID, labels: dict[str, str]) -> None:
        _check_id(instance)
        _check_keys(labels, field="Labels")
        if not labels:
            return
        tags = [{"Key": key, "Value": value} for key, value in sorted(labels.items())]
        await self.api.call("CreateTags", {"Resources": [instance], "Tags": tags})

    async def destroy(self, instance: instance.ID) -> None:
        _check_id(instance)
        try:
            found = await self._instances({"InstanceIds": [instance]})
        except errors.NotFoundError:
            found = []
        alive = [each for each in found if _state(each) not in GONE]
        if not alive:
            log.info("destroy %s: no such instance, or terminated already (done)", instance)
            return
        tags = _tags_of(alive[0])
        if MANAGED not in tags and GROUP not in tags:
            raise errors.PermanentError(
                f"instance {instance}: not made by InfraKit (no {MANAGED} or {GROUP} tag); "
                "refusing to terminate it", instance=instance)
        with contextlib.suppress(errors.NotFoundError):  # gone meanwhile: done
            await self.api.call("TerminateInstances", {"InstanceIds": [instance]})
        log.info("terminated %s", instance)

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        wanted = {**tags, **self.namespace}
        filters = [{"Name": "instance-state-name", "Values": list(LIVE)},
                   *({"Name": f"tag:{key}", "Values": [_WILDCARDS.sub(r"\\\1", value)]}
                     for key, value in sorted(wanted.items()))]
        found = []
        for each in await self._instances({"Filters": filters, "MaxResults": PAGE}):
            described = _describe(each, detailed=properties)
            # EC2's filters match words; ours must match exactly.
            if _state(each) not in GONE and all(described.tags.get(k) == v
                                                for k, v in wanted.items()):
                found.append(described)
        found.sort(key=lambda description: description.id)
        return found

    # -- steps -------------------------------------------------------------------------

    def _tags(self, spec: instance.Spec, props: properties.Properties) -> dict[str, str]:
        clash = sorted(key for key in props.tags.keys() & spec.tags.keys()
                       if props.tags[key] != spec.tags[key])
        if clash:
            log.warning("Properties.Tags %s: the spec's tags win", ", ".join(clash))
        _check_keys(props.tags, field="Properties.Tags")
        _check_keys(spec.tags, field="Spec.Tags")
        tags = {**props.tags, **self.namespace, **spec.tags, MANAGED: self.name}
        if spec.logical_id is not None:
            tags[LOGICAL_ID] = spec.logical_id
        return tags

    async def _launch(self, request: dict[str, Any], launch: _Launch) -> str:
        """RunInstances until it answers, looking before each retry that may repeat a
        launch that happened."""
        attempts = self.api.policy.attempts()
        while True:
            if launch.maybe:
                found = await self._launched(launch)
                if found is not None:
                    log.info("found %s, launched by an earlier attempt", found)
                    return found
            try:
                answer = await self.api.once("RunInstances", tokens.stamp(request, launch.token),
                                             root=properties.ROOT)
                return _launched_id(answer)
            except failures.Failure as failure:
                launch.maybe = launch.maybe or failure.uncertain
                if failure.pending is not None:
                    settled = await self._settle(failure)
                    if settled is not None:
                        return _launched_id(settled)
                wait = attempts.next_delay() if failure.retryable else None
                if wait is None:
                    raise failure.error(attempts=attempts.done) from None
                log.info("%s; retrying in %.2fs", failure, wait)
                await asyncio.sleep(wait)

    async def _settle(self, failure: failures.Failure) -> dict[str, Any] | None:
        """What a RunInstances we stopped waiting for answered, once it is done."""
        assert failure.pending is not None
        try:
            return await self.api.settle(failure.pending)
        except TimeoutError:
            raise errors.TemporaryError(
                f"{failure}: EC2 may still be launching it; the next Provision of this spec "
                "looks for it first", delay=5.0) from None

    async def _launched(self, launch: _Launch) -> str | None:
        """The live instance carrying ``launch``'s token, if any. Only a dead one: that
        token is spent (EC2 would answer it with the dead instance), so a new one is taken."""
        found = await self._instances({"Filters": [{"Name": f"tag:{tokens.TAG}",
                                                    "Values": [launch.token]}]})
        alive = sorted(str(each["InstanceId"]) for each in found if _state(each) not in GONE)
        if alive:
            return alive[0]
        if found:
            launch.token = tokens.new()
        launch.maybe = False
        return None

    async def _instances(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every instance DescribeInstances lists for ``params``, page after page."""
        found: list[dict[str, Any]] = []
        page: dict[str, Any] = {}
        while True:
            answer = await self.api.call("DescribeInstances", {**params, **page})
            for reservation in answer.get("Reservations") or []:
                found.extend(reservation.get("Instances") or [])
            following = answer.get("NextToken")
            if not following:
                return found
            page = {"NextToken": following}


def _check_id(iid: str) -> None:
    if not _INSTANCE_ID.match(iid):
        raise errors.NotFoundError(f"no EC2 instance {iid!r}: an instance ID reads "
                                   "i-0123456789abcdef0", instance=iid)


def _check_keys(tags: dict[str, str], *, field: str) -> None:
    reserved = sorted(key for key in tags if key.lower().startswith("aws:"))
    if reserved:
        raise errors.InvalidError(f"{field}.{reserved[0]}: tag keys starting with aws: are "
                                  "AWS's own", field=f"{field}.{reserved[0]}")


def _launched_id(answer: dict[str, Any]) -> str:
    launched = answer.get("Instances") or []
    if len(launched) != 1:
        raise errors.PermanentError(f"EC2 RunInstances: expected one instance in the answer, "
                                    f"got {len(launched)}")
    return str(launched[0]["InstanceId"])


def _state(found: dict[str, Any]) -> str:
    return str((found.get("State") or {}).get("Name", ""))


def _tags_of(found: dict[str, Any]) -> dict[str, str]:
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in found.get("Tags") or []
            if "Key" in tag}


def _describe(found: dict[str, Any], *, detailed: bool) -> instance.Description:
    tags = _tags_of(found)
    logical = tags.get(LOGICAL_ID)
    if logical is None and MANAGED not in tags:
        logical = found.get("PrivateIpAddress")  # InfraKit's AWS plugin's pets: their IP
    return instance.Description(
        id=instance.ID(str(found["InstanceId"])),
        logical_id=instance.LogicalID(logical) if logical else None, tags=tags,
        properties=_jsonable(found) if detailed else None)


def _jsonable(value: Any) -> Any:
    """EC2's answer as JSON: times as ISO 8601 text."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return value
