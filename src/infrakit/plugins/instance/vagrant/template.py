"""The Vagrantfile template: the built-in one, or the user's (``--template``), and rendering.

Templates are Jinja2 (InfraKit's sandboxed engine, :mod:`infrakit.template`). v0.5's were Go
templates; a v0.5 template whose actions are plain field references (``{{.Properties.Box}}``,
as its built-in one) is read unchanged: each such reference is rewritten to Jinja's
``{{ Properties.Box }}`` before compiling. Any other Go action must be rewritten in Jinja.

What a template sees (:func:`context`):

- ``Properties``: the instance's Properties with v0.5's defaults filled (``CPUs`` 2,
  ``Memory`` 512) and ``Provider`` resolved;
- ``NetworkOptions``: v0.5's private network options, ``, ip: "<LogicalID>"`` for a pet and
  ``, type: "dhcp"`` otherwise;
- ``Instance``: ``ID`` (the machine's directory name), ``LogicalID``, ``Tags``, ``Init``,
  ``Hostname`` (the LogicalID when it is a valid hostname, else the ID);
- ``Env``: ``Properties.Env`` plus ``INFRAKIT_INSTANCE_ID``, ``INFRAKIT_LOGICAL_ID`` and
  ``INFRAKIT_TAG_<KEY>``; ``Cmd``: the container's command with Init run first (or None);
  ``Labels``: what marks a container as this plugin's;
- ``ruby(value)``: ``value`` (string, number, bool, list, map, None) as a Ruby literal, so
  that no value can break out of its string (``#{…}`` is not interpolated).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infrakit import errors
from infrakit import template as templating
from infrakit.plugins import environment
from infrakit.plugins.instance.vagrant import properties as props
from infrakit.template import fetch

BUILTIN_SOURCE = "<built-in Vagrantfile>"
MARK = "infrakit.instance-vagrant"
"""The container label naming the plugin that made a docker-provider machine."""
INSTANCE = "infrakit.instance"
"""The container label holding the instance's ID."""

BUILTIN = """\
# infrakit-instance-vagrant's built-in Vagrantfile (replace it with --template FILE).
Vagrant.configure("2") do |config|
  config.vm.hostname = {{ ruby(Instance.Hostname) }}
  # A machine shares no folder with the host.
  config.vm.synced_folder ".", "/vagrant", disabled: true
{%- if Properties.Provider == "docker" %}
  # No SSH into a container, so no port forwarded for it (nor probed on the host).
  config.vm.network :forwarded_port, guest: 22, host: 2222, id: "ssh", disabled: true
  config.vm.provider "docker" do |d|
    d.name = {{ ruby(Instance.ID) }}
    d.image = {{ ruby(Properties.Image) }}
    d.has_ssh = false
    d.env = {{ ruby(Env) }}
{%- if Cmd is not none %}
    d.cmd = {{ ruby(Cmd) }}
{%- endif %}
    # Images are never pulled: build or load them on the engine first.
    d.create_args = ["--pull=never"
{%- for key, value in Labels.items() %}, "--label", {{ ruby(key ~ "=" ~ value) }}{% endfor %}]
  end
{%- else %}
  config.vm.box = {{ ruby(Properties.Box) }}
  config.vm.network "private_network"{{ NetworkOptions }}
  config.vm.provision :shell, path: "boot.sh"
  config.vm.provider {{ ruby(Properties.Provider) }} do |vm|
    vm.memory = {{ ruby(Properties.Memory) }}
    vm.cpus = {{ ruby(Properties.CPUs) }}
  end
{%- endif %}
end
"""

_GO_FIELD = re.compile(r"\{\{(-?)\s*\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(-?)\}\}")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Template:
    """A Vagrantfile template: its Jinja text and where it came from."""

    text: str
    source: str
    builtin: bool

    def render(self, variables: Mapping[str, Any]) -> str:
        """The Vagrantfile; ``InvalidError`` naming the template and line when it fails (a
        Properties key the template needs is missing, …)."""
        try:
            return str(templating.render(self.text, source=self.source,
                                         variables=dict(variables)))
        except errors.UsageError as exc:
            raise errors.InvalidError(f"Properties: the Vagrantfile template failed: "
                                      f"{exc.message}", field="Properties") from None


def builtin() -> Template:
    return Template(text=BUILTIN, source=BUILTIN_SOURCE, builtin=True)


def load(location: str) -> Template:
    """The template at ``location`` (a path, or a ``file://``/``http(s)://`` URL, as v0.5's
    ``--template``), checked; ``UsageError`` naming the flag when it cannot be read or
    compiled; the built-in one for ``""``."""
    if not location:
        return builtin()
    if not fetch.is_url(location):
        location = os.path.abspath(location)
    try:
        text = from_go(fetch.fetch(location))
        templating.check(text, source=location)
    except errors.UsageError as exc:
        raise errors.UsageError(f"--template: {exc.message}", flag="--template") from None
    return Template(text=text, source=location, builtin=False)


def from_go(text: str) -> str:
    """v0.5's Go field references (``{{.Properties.Box}}``) as Jinja (``{{ Properties.Box
    }}``); everything else unchanged."""
    return _GO_FIELD.sub(lambda m: f"{{{{{m[1]} {m[2]} {m[3]}}}}}", text)


def context(wanted: props.Properties, *, iid: str, logical_id: str | None,
            tags: Mapping[str, str], init: str, plugin: str) -> dict[str, Any]:
    """What a template sees for one instance (see the module's docstring)."""
    variables = environment.for_instance(iid, logical_id=logical_id, tags=tags)
    network = f", ip: {ruby(logical_id)}" if logical_id else ', type: "dhcp"'
    return {
        "Properties": {**wanted.to_wire(), "Provider": wanted.chosen_provider()},
        "NetworkOptions": network,
        "Instance": {"ID": iid, "LogicalID": logical_id, "Tags": dict(tags), "Init": init,
                     "Hostname": hostname(iid, logical_id=logical_id)},
        "Env": {**(wanted.env or {}), **variables},
        "Cmd": command(init, wanted.cmd),
        "Labels": {MARK: plugin, INSTANCE: iid},
        "ruby": ruby,
    }


def hostname(iid: str, *, logical_id: str | None) -> str:
    """The machine's hostname: its LogicalID when that is a valid hostname, else its ID."""
    if logical_id and all(_HOSTNAME.match(part) for part in logical_id.split(".")) \
            and len(logical_id) <= 253 and not logical_id.replace(".", "").isdigit():
        return logical_id
    return iid


def command(init: str, cmd: list[str] | None) -> list[str] | None:
    """A container's command: Init as a shell script that then ``exec``s ``cmd``; ``cmd``
    alone without Init; None (the image's) with neither."""
    if not init.strip():
        return cmd
    if cmd:
        return ["/bin/sh", "-c", f'{init}\nexec "$@"', "infrakit-init", *cmd]
    return ["/bin/sh", "-c", init]


def ruby(value: Any) -> str:
    """``value`` as a Ruby literal: strings double-quoted with ``#`` escaped (no
    interpolation), lists as arrays, maps as hashes, None as nil."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("#", "\\#")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(ruby(item) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = (f"{ruby(str(key))} => {ruby(item)}" for key, item in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(f"ruby(): cannot write a {type(value).__name__} as a Ruby literal")
