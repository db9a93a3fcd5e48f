"""The one libvirt connection of a plugin: the bindings, (re)connecting, events, errors.

The bindings are the ``libvirt-python`` package (``pip install 'infrakit[libvirt]'``), loaded
on first use so that the rest of InfraKit never needs them; without them the plugin says
what to install. Libvirt's objects are typed ``Any`` here: the bindings ship no type marker.

A connection that died (libvirtd restarted) is opened again on the next call. With
``on_lifecycle`` the connection also runs libvirt's event loop in a daemon thread and reports
every domain that stops or crashes (the plugin wakes the group with it), and keep-alives
notice a dead daemon.

:func:`translated` turns a ``libvirtError`` into our error tree: no such domain is
``NotFoundError``, a daemon that cannot be reached is ``Unavailable`` (the caller retries),
anything else a ``PermanentError`` carrying libvirt's own message.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from infrakit import errors

log = logging.getLogger(__name__)

EXTRA = "pip install 'infrakit[libvirt]' (it builds against libvirt: apt-get install " \
        "libvirt-dev pkg-config)"

Lifecycle = Callable[[str, str], None]
"""Called with a domain's name and what happened to it (``stopped``, ``crashed``)."""

_EVENT_LOOP_LOCK = threading.Lock()
_event_loop_started = False


@functools.cache
def bindings() -> Any:
    """The ``libvirt`` module; ``PermanentError`` saying what to install when it is missing."""
    try:
        libvirt = importlib.import_module("libvirt")
    except ImportError:
        raise errors.PermanentError(
            f"instance-libvirt needs the libvirt Python bindings: {EXTRA}") from None
    # Without a handler libvirt prints every error to stderr, those we expect and handle
    # (a name not taken yet) included; ours go through the exceptions it also raises.
    libvirt.registerErrorHandler(_ignore, None)
    return libvirt


def _ignore(_context: Any, _error: Any) -> None:
    """libvirt's error handler: the error is raised as ``libvirtError`` too."""


class Connection:
    """A libvirt connection to ``uri``, reopened when it dies (thread-safe)."""

    def __init__(self, uri: str, *, on_lifecycle: Lifecycle | None = None) -> None:
        self.uri = uri
        self._on_lifecycle = on_lifecycle
        self._lock = threading.Lock()
        self._conn: Any = None

    def get(self) -> Any:
        """The open ``virConnect``; ``Unavailable`` when libvirtd cannot be reached."""
        with self._lock:
            if self._conn is not None and self._alive(self._conn):
                return self._conn
            self._conn = None
            libvirt = bindings()
            if self._on_lifecycle is not None:
                _start_event_loop(libvirt)
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise errors.Unavailable(f"cannot connect to libvirt at {self.uri}: "
                                         f"{exc.get_error_message()}", delay=2.0) from None
            if self._on_lifecycle is not None:
                self._watch(libvirt, conn)
            self._conn = conn
            return conn

    def alive(self) -> bool:
        """Whether the connection is open and its daemon answers keep-alives."""
        with self._lock:
            conn = self._conn
        return conn is not None and self._alive(conn)

    def drop(self) -> None:
        """Forget the connection (it failed): the next :meth:`get` opens a new one."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self.drop()

    @staticmethod
    def _alive(conn: Any) -> bool:
        try:
            return bool(conn.isAlive())
        except Exception:
            return False

    def _watch(self, libvirt: Any, conn: Any) -> None:
        notify = self._on_lifecycle
        assert notify is not None
        names = {libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
                 libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed"}

        def lifecycle(_conn: Any, domain: Any, event: int, _detail: int, _opaque: Any) -> None:
            what = names.get(event)
            if what is not None:
                try:
                    notify(domain.name(), what)
                except Exception:
                    log.exception("lifecycle callback failed")

        try:
            conn.setKeepAlive(5, 3)
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                        lifecycle, None)
        except libvirt.libvirtError as exc:
            log.warning("no domain events from %s (%s): polling finds stopped guests",
                        self.uri, exc.get_error_message())


def _start_event_loop(libvirt: Any) -> None:
    """libvirt's default event loop in a daemon thread (once per process, before the first
    connection that wants events)."""
    global _event_loop_started
    with _EVENT_LOOP_LOCK:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


@contextlib.contextmanager
def translated(connection: Connection, what: str, *, instance: str | None = None
               ) -> Iterator[None]:
    """Run the block; a ``libvirtError`` in it becomes our error, prefixed with ``what``."""
    libvirt = bindings()
    try:
        yield
    except libvirt.libvirtError as exc:
        raise error(connection, exc, what=what, instance=instance) from None


def error(connection: Connection, exc: Any, *, what: str, instance: str | None = None
          ) -> errors.InfrakitError:
    """``exc`` (a ``libvirtError``) as our error; a lost daemon also drops the connection."""
    libvirt = bindings()
    code, domain = exc.get_error_code(), exc.get_error_domain()
    text = f"{what}: {exc.get_error_message()}"
    data = {"instance": instance} if instance else {}
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return errors.NotFoundError(text, **data)
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN) or \
            domain == libvirt.VIR_FROM_RPC or \
            (code == libvirt.VIR_ERR_SYSTEM_ERROR and not connection.alive()):
        connection.drop()
        return errors.Unavailable(text, delay=2.0, **data)
    return errors.PermanentError(text, **data)
