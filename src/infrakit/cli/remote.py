"""The plugin a command talks to: found by name in the plugins dir (or at its URL, or at
``--host``), called with the sync client.

Commands put a :class:`Target` in their click context (the named form ``--name P`` and the
dynamic form ``infrakit P verb`` alike); verbs find it with :func:`target` and call through it.
With ``--host URL`` (or ``$INFRAKIT_HOST``) the name goes into the URL's path
(``https://h:24864/group``); a name that is a URL is used as it is.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import click
import pydantic

from infrakit import errors, validation
from infrakit.cli import options
from infrakit.rpc import address, discovery, sync
from infrakit.spi import handshake
from infrakit.spi.wire import Wire

W = TypeVar("W", bound=Wire)


def _context_host() -> str | None:
    """``--host`` of the command being run, if any."""
    ctx = click.get_current_context(silent=True)
    settings = ctx.find_object(options.Settings) if ctx is not None else None
    return settings.host if settings is not None else None


@dataclasses.dataclass
class Target:
    """One plugin (``name`` or ``name/type``, or a URL), connected on first use."""

    name: str
    timeout: float = 30.0
    host: str | None = dataclasses.field(default_factory=_context_host)
    """``--host``: the plugin is reached at this URL, not in the plugins dir."""
    _client: sync.Client | None = dataclasses.field(default=None, repr=False)

    @property
    def where(self) -> str:
        """The plugin's URL (its name's, or ``--host``'s), else its name."""
        if not self.host or address.is_url(self.name):
            return self.name
        return address.join(self.host, self.name)

    @property
    def type_name(self) -> str:
        """The Type sent with Instance and Flavor calls (``""``: the default object)."""
        return discovery.Name.parse(self.where).type

    def client(self) -> sync.Client:
        if self._client is None:
            where = self.where
            lookup = discovery.Name.parse(where).lookup
            if address.is_url(where):
                self._client = sync.Client(lookup, timeout=self.timeout)
            else:
                self._client = sync.Client(discovery.find(where), name=lookup,
                                           timeout=self.timeout)
        return self._client

    def implements(self) -> list[handshake.Interface]:
        return self.client().implements()

    def call(self, method: str, request: Wire, answer: type[W], *,
             needs: tuple[handshake.Interface, ...]) -> W:
        """Check the handshake, call ``method``, parse its result as ``answer``."""
        client = self.client()
        client.require(*needs)
        result = client.call(method, request.to_wire())
        try:
            return answer.from_wire(result)
        except pydantic.ValidationError as exc:
            raise errors.ProtocolError(
                f"{client.name}: malformed result of {method}: "
                f"{validation.describe(exc, limit=3)}", plugin=client.name) from None


def target(ctx: click.Context) -> Target:
    """The plugin the enclosing command group chose."""
    found = ctx.find_object(Target)
    if found is None:  # a verb used outside a plugin group: a wiring bug, not user error
        raise RuntimeError("no plugin target in the click context")
    if not found.name:  # checked here, not when parsing, so that `VERB --help` needs no name
        raise click.UsageError("Missing option '--name'.", ctx)
    return found


def bind(ctx: click.Context, name: str) -> Target:
    """Make plugin ``name`` the target of the commands under ``ctx``."""
    settings = ctx.find_object(options.Settings) or options.Settings()
    bound = Target(name, timeout=settings.timeout, host=settings.host)
    ctx.obj = bound
    return bound
