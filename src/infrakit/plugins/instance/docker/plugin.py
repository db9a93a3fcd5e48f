"""The ``instance-docker`` plugin: each instance is a container on a Docker engine.

Served by ``infrakit-instance-docker`` (:mod:`.serve`); tests call :class:`Plugin` directly.
Properties are :mod:`.layout`'s (ours, or the original's ``Config``/``HostConfig``).

- **IDs and names.** An instance's ID is the first 12 characters of its container's ID (as
  in the original; it is also the container's hostname). A pet's container is named by its
  LogicalID, which must be a valid container name; a cattle container is named
  ``<group>-<8 hex digits>`` so that ``docker ps`` and every error name it.
- **Tags are labels**, fixed at creation: the spec's tags win over ``Properties.Tags``, and
  ``--namespace-tags`` are added to both (the original only filtered by them, so it never
  found what it made). ``infrakit.instance-docker=<plugin name>`` marks what we made and
  ``infrakit.logical_id`` a pet. Label cannot change a container's labels (Docker cannot).
- **Init runs at start**, as the container's entrypoint: ``/bin/sh -c '<Init>; exec "$@"'``
  followed by the entrypoint and command the container would otherwise run (read from
  the image when Properties leave them unset), so the image needs ``/bin/sh``; with no
  command at all, Init is the container's process. A failing Init is a container that
  exits, which the group sees die and replaces.
- **Describe** is one labelled list call. Containers that exited or died (and that Docker
  will not restart) are left out, so the group replaces them, and the ones we made are
  removed there and then: nothing we made lingers once replaced (v0.5 leaked them).
- **Destroy** stops the container (SIGTERM, SIGKILL after its StopTimeout), then removes it
  with its anonymous volumes, and a network we created that nothing uses any more; a
  missing container is not an error, and containers InfraKit did not make are refused.
- **Errors** name the container and the cause: an unreachable or restarting engine, or a
  container that cannot start (a port already taken) is ``TemporaryError`` (the group backs
  off and retries); a missing image is ``PermanentError`` (images are never pulled); a spec
  Docker rejects is ``InvalidError``. A container that fails after create is removed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import urllib.parse
from typing import Any

from infrakit import errors
from infrakit.plugins import environment
from infrakit.plugins.instance.docker import engine, layout
from infrakit.spi import instance

log = logging.getLogger(__name__)

MANAGED = "infrakit.instance-docker"
"""The label on everything we create; its value is the plugin's name."""
LOGICAL_ID = "infrakit.logical_id"
"""The label of a pet's logical ID (its container's name)."""
GROUP = "infrakit.group"
"""The group plugin's membership tag (only read, to decide what we may destroy)."""
GONE = frozenset({"exited", "dead"})
"""States of a container that Docker will not run again by itself."""
DEFAULT_NETWORKS = frozenset({"bridge", "host", "none", "default"})
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
"""A container name, as Docker checks it."""
_REFERENCE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
"""An ID, ID prefix or name: anything else names no container."""
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_.-]+")
EVENT_LAG = 10.0
"""Seconds a destroyed container's events are still ours to ignore."""
REMOVAL_WAIT = 30.0
"""Seconds Destroy waits for a removal another call started to finish."""


class Plugin:
    """An instance plugin over one Docker engine (async methods)."""

    def __init__(self, docker: engine.Engine, *, name: str = "instance-docker",
                 namespace: dict[str, str] | None = None) -> None:
        self.engine = docker
        self.name = name
        self.namespace = dict(namespace or {})
        """Tags put on every container and required of every container listed."""
        self.destroying: set[str] = set()
        """Full IDs of containers being destroyed here (their events wake nobody)."""

    async def validate(self, properties: Any) -> None:
        layout.parse(properties)

    async def provision(self, spec: instance.Spec) -> instance.ID:
        wanted = layout.container(layout.parse(spec.properties))
        name = self._container_name(spec)
        body = {**wanted.config, "Labels": self._labels(spec, wanted),
                "HostConfig": wanted.host_config}
        body["Env"] = [*(body.get("Env") or []), *_variables(spec)]
        if spec.init.strip():
            await self._run_init(body, spec.init, name=name)
        for network, driver in wanted.networks:
            await self._ensure_network(network, driver, name=name)
        answer = await self._call(name, "POST", "/containers/create", query={"name": name},
                                  body=body)
        if not answer.ok:
            raise _create_failed(name, body["Image"], answer)
        cid = str(answer.json()["Id"])
        try:
            for network, _ in wanted.networks:
                await self._connect(cid, network, name=name)
            started = await self._call(name, "POST", f"/containers/{cid}/start")
            if not started.ok and started.status != 304:
                raise errors.TemporaryError(
                    f"container {name}: cannot start: {started.message}", delay=2.0,
                    container=name)
        except BaseException:
            # Shielded: a cancelled provision must still not leave its container behind.
            await asyncio.shield(self._discard(cid, name=name))
            raise
        log.info("provisioned %s (%s)", cid[:12], name)
        return instance.ID(cid[:12])

    async def label(self, instance: instance.ID, labels: dict[str, str]) -> None:
        found = await self._inspect(instance)
        if found is None:
            raise errors.NotFoundError(f"no container {instance!r}", instance=instance)
        raise errors.PermanentError(
            f"container {_name_of(found)}: Docker cannot change a container's labels; "
            "instance-docker sets them at Provision only", instance=instance)

    async def destroy(self, instance: instance.ID) -> None:
        found = await self._inspect(instance)
        if found is None:
            log.info("destroy %s: no such container (done already)", instance)
            return
        name, labels = _name_of(found), found.get("Config", {}).get("Labels") or {}
        if MANAGED not in labels and GROUP not in labels:
            raise errors.PermanentError(
                f"container {name}: not made by InfraKit (no {MANAGED} or {GROUP} label); "
                "refusing to destroy it", instance=instance)
        cid = str(found["Id"])
        self.destroying.add(cid)
        try:
            await self._stop(cid, name=name, grace=_grace(found))
            await self._remove(cid, name=name)
        finally:
            # Kept a while: the engine's events for this container arrive after we return.
            asyncio.get_running_loop().call_later(EVENT_LAG, self.destroying.discard, cid)
        networks = (found.get("NetworkSettings") or {}).get("Networks") or {}
        for network in set(networks) - DEFAULT_NETWORKS:
            await self._forget_network(network)
        log.info("destroyed %s (%s)", instance, name)

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        wanted = {**tags, **self.namespace}
        filters = {"label": [f"{key}={value}" for key, value in sorted(wanted.items())]}
        answer = await self._call(None, "GET", "/containers/json",
                                  query={"all": "1", "filters": _json(filters)})
        if not answer.ok:
            raise errors.TemporaryError(f"cannot list containers: {answer.message}")
        found, dead = [], []
        for item in answer.json() or []:
            state = item.get("State", "")
            if state in GONE:
                if MANAGED in (item.get("Labels") or {}):
                    dead.append(item)
                continue
            if state != "removing":
                found.append(_describe(item, detailed=properties))
        if dead:
            await asyncio.gather(*(self._remove_dead(item) for item in dead))
        found.sort(key=lambda description: description.id)
        return found

    # -- steps -------------------------------------------------------------------------

    def _container_name(self, spec: instance.Spec) -> str:
        if spec.logical_id is not None:
            if not _NAME.match(spec.logical_id):
                raise errors.InvalidError(
                    f"Spec.LogicalID: {spec.logical_id!r} is not a valid container name: "
                    "expected a letter or digit, then letters, digits, '_', '.' or '-'",
                    field="Spec.LogicalID")
            return spec.logical_id
        prefix = _NOT_NAME.sub("-", spec.tags.get(GROUP, "")).strip("-._") or "infrakit"
        return f"{prefix}-{secrets.token_hex(4)}"

    def _labels(self, spec: instance.Spec, wanted: layout.Container) -> dict[str, str]:
        clash = sorted(k for k in wanted.tags.keys() & spec.tags.keys()
                       if wanted.tags[k] != spec.tags[k])
        if clash:
            log.warning("Properties.Tags %s: the spec's tags win", ", ".join(clash))
        labels = {**wanted.tags, **self.namespace, **spec.tags, MANAGED: self.name}
        if spec.logical_id is not None:
            labels[LOGICAL_ID] = spec.logical_id
        return labels

    async def _run_init(self, body: dict[str, Any], init: str, *, name: str) -> None:
        """Make ``init`` the container's entrypoint, running what it would run after it."""
        entrypoint, command = _argv(body.get("Entrypoint")), _argv(body.get("Cmd"))
        if "Entrypoint" not in body:  # the image's, and with it the image's command
            image = await self._image(body["Image"], name=name)
            entrypoint = _argv(image.get("Entrypoint"))
            if "Cmd" not in body:
                command = _argv(image.get("Cmd"))
        argv = [*entrypoint, *command]
        script = f'{init}\nexec "$@"' if argv else init
        body["Entrypoint"] = ["/bin/sh", "-c", script, "infrakit-init"]
        body["Cmd"] = argv

    async def _image(self, image: str, *, name: str) -> dict[str, Any]:
        answer = await self._call(name, "GET", f"/images/{_quote(image, safe=':@/')}/json")
        if answer.status == 404:
            raise _no_image(name, image)
        if not answer.ok:
            raise errors.TemporaryError(f"container {name}: cannot inspect image {image}: "
                                        f"{answer.message}", container=name)
        config: dict[str, Any] = (answer.json() or {}).get("Config") or {}
        return config

    async def _ensure_network(self, network: str, driver: str, *, name: str) -> None:
        """Create ``network`` when no network has that name (as the original did)."""
        listed = await self._call(name, "GET", "/networks",
                                  query={"filters": _json({"name": [network]})})
        if listed.ok and any(n.get("Name") == network for n in listed.json() or []):
            return
        body = {"Name": network, "CheckDuplicate": True, "Attachable": True,
                "Labels": {MANAGED: self.name}}
        if driver:
            body["Driver"] = driver
        made = await self._call(name, "POST", "/networks/create", body=body)
        if not made.ok and made.status != 409:  # 409: made meanwhile by another provision
            raise errors.TemporaryError(f"container {name}: cannot create network "
                                        f"{network}: {made.message}", container=name)

    async def _connect(self, cid: str, network: str, *, name: str) -> None:
        answer = await self._call(name, "POST", f"/networks/{_quote(network)}/connect",
                                  body={"Container": cid})
        if not answer.ok:
            raise errors.TemporaryError(f"container {name}: cannot join network {network}: "
                                        f"{answer.message}", container=name)

    async def _stop(self, cid: str, *, name: str, grace: float) -> None:
        answer = await self._call(name, "POST", f"/containers/{cid}/stop",
                                  timeout=grace + engine.TIMEOUT)
        if not answer.ok and answer.status not in (304, 404):
            raise errors.TemporaryError(f"container {name}: cannot stop: {answer.message}",
                                        container=name)

    async def _remove(self, cid: str, *, name: str) -> None:
        answer = await self._call(name, "DELETE", f"/containers/{cid}",
                                  query={"v": "1", "force": "1"})
        if answer.ok or answer.status == 404:
            return
        if answer.status == 409:  # a removal already in progress (Describe, AutoRemove)
            await self._removed(cid, name=name)
            return
        raise errors.TemporaryError(f"container {name}: cannot remove: {answer.message}",
                                    container=name)

    async def _removed(self, cid: str, *, name: str) -> None:
        """Wait until the container is gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REMOVAL_WAIT
        while await self._inspect(cid) is not None:
            if loop.time() > deadline:
                raise errors.TemporaryError(f"container {name}: still being removed after "
                                            f"{REMOVAL_WAIT:g}s", container=name)
            await asyncio.sleep(0.05)

    async def _discard(self, cid: str, *, name: str) -> None:
        """Remove a container whose provision failed; a failure here is only logged."""
        try:
            await self._remove(cid, name=name)
        except errors.InfrakitError as exc:
            log.error("container %s (%s) could not be removed after a failed provision: %s",
                      name, cid[:12], exc.message)

    async def _remove_dead(self, item: dict[str, Any]) -> None:
        name = _name_of(item)
        log.warning("container %s (%s) has stopped (%s): removing it, the group replaces it",
                    name, str(item["Id"])[:12], item.get("Status", item.get("State")))
        try:
            await self._remove(str(item["Id"]), name=name)
        except errors.InfrakitError as exc:
            log.warning("could not remove container %s: %s", name, exc.message)

    async def _forget_network(self, network: str) -> None:
        """Remove a network we created once nothing is attached (Docker refuses before)."""
        try:
            found = await self.engine.call("GET", f"/networks/{_quote(network)}")
            if found.ok and MANAGED in ((found.json() or {}).get("Labels") or {}) \
                    and not (found.json() or {}).get("Containers"):
                await self.engine.call("DELETE", f"/networks/{_quote(network)}")
        except errors.InfrakitError as exc:
            log.debug("network %s left in place: %s", network, exc.message)

    async def _inspect(self, container: str) -> dict[str, Any] | None:
        if not _REFERENCE.match(container):
            return None
        answer = await self._call(container, "GET", f"/containers/{_quote(container)}/json")
        if answer.status == 404:
            return None
        if not answer.ok:
            raise errors.TemporaryError(f"container {container}: cannot inspect: "
                                        f"{answer.message}", container=container)
        found: dict[str, Any] = answer.json()
        return found

    async def _call(self, name: str | None, method: str, path: str,
                    **kwargs: Any) -> engine.Answer:
        """An engine call; an unreachable engine's error names the container too."""
        try:
            return await self.engine.call(method, path, **kwargs)
        except errors.TemporaryError as exc:
            if name is None:
                raise
            raise type(exc)(f"container {name}: {exc.message}", delay=exc.delay,
                            container=name) from None


def _create_failed(name: str, image: str, answer: engine.Answer) -> errors.InfrakitError:
    if answer.status == 404:
        return _no_image(name, image)
    if answer.status == 400:
        return errors.InvalidError(f"container {name}: Docker refused the spec: "
                                   f"{answer.message}", field="Properties", container=name)
    if answer.status == 409:
        return errors.TemporaryError(f"container {name}: the name is taken: {answer.message}",
                                     delay=2.0, container=name)
    return errors.TemporaryError(f"container {name}: cannot create: {answer.message}",
                                 delay=2.0, container=name)


def _no_image(name: str, image: str) -> errors.PermanentError:
    return errors.PermanentError(
        f"container {name}: no image {image} on the engine (instance-docker never pulls: "
        "build, load or pull it there first)", container=name, image=image)


def _describe(item: dict[str, Any], *, detailed: bool) -> instance.Description:
    labels = dict(item.get("Labels") or {})
    name = _name_of(item)
    # A pet's name is its logical ID; a container someone else made (the v0.5 plugin did
    # not mark its own) reports its name, as v0.5 did.
    logical = name if LOGICAL_ID in labels or MANAGED not in labels else None
    details = None
    if detailed:
        details = {key: item.get(key) for key in ("Image", "State", "Status", "Created",
                                                  "Ports")}
        details["Name"] = name
    return instance.Description(id=instance.ID(str(item["Id"])[:12]),
                                logical_id=instance.LogicalID(logical) if logical else None,
                                tags=labels, properties=details)


def _name_of(item: dict[str, Any]) -> str:
    """A container's name from a listing (``Names``) or an inspect (``Name``)."""
    names = item.get("Names") or [item.get("Name") or str(item.get("Id", ""))[:12]]
    return str(names[0]).lstrip("/")


def _grace(found: dict[str, Any]) -> float:
    value = (found.get("Config") or {}).get("StopTimeout")
    return float(value) if isinstance(value, int | float) and value >= 0 else 10.0


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(word) for word in value]


def _variables(spec: instance.Spec) -> list[str]:
    """``INFRAKIT_LOGICAL_ID`` and ``INFRAKIT_TAG_<KEY>`` (the ID is the hostname)."""
    variables = environment.for_instance("", logical_id=spec.logical_id, tags=spec.tags)
    del variables["INFRAKIT_INSTANCE_ID"]  # not known before create: it is $HOSTNAME
    return [f"{key}={value}" for key, value in variables.items()]


def _quote(segment: str, *, safe: str = ":@") -> str:
    """A path segment, escaped: a name can never reach another endpoint."""
    return urllib.parse.quote(segment, safe=safe)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
