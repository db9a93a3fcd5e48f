"""The lines the swarm flavor puts before a node's Init: wait for the node's own engine, then
join the swarm (or, for the first manager of a new swarm, initialize it).

The join runs in the background, so the Init after it may start dockerd in the foreground
(``exec dockerd ...``). It uses the docker CLI against ``Docker.NodeHost``; dockerd itself
makes the connection to the managers, from the node's network. Join tokens are written in
plain text, as v0.5 did: the Init is as secret as the tokens.
"""

from __future__ import annotations

import shlex

GO_STATE = "{{.Swarm.LocalNodeState}}"
"""The docker CLI's format for the node's swarm state."""


def engine_url(template: str, *, lid: str) -> str:
    """``Docker.NodeHost`` as a double-quoted shell word: ``{ID}`` is the instance's ID."""
    text = template.replace("{LogicalID}", lid)
    for char in ("\\", '"', "$", "`"):
        text = text.replace(char, "\\" + char)
    return '"' + text.replace("{ID}", "${INFRAKIT_INSTANCE_ID}") + '"'


def labels(engine_labels: dict[str, str]) -> str:
    """``--label k=v`` flags for the node's dockerd, to expand unquoted (``EngineLabels``
    hold no blanks nor shell characters: :mod:`.properties` checks)."""
    return " ".join(f"--label {k}={v}" for k, v in sorted(engine_labels.items()))


def join(*, token: str, addresses: list[str], advertise: str) -> str:
    """The command joining the swarm through one of ``addresses`` (tried in turn)."""
    flag = f" --advertise-addr {shlex.quote(advertise)}" if advertise else ""
    tries = [f'docker -H "$SWARM_ENGINE" swarm join --token {shlex.quote(token)}{flag} '
             f"{shlex.quote(address)}" for address in addresses]
    return " || ".join(tries) or "false"


def initialize(*, advertise: str) -> str:
    """The command creating the swarm on this node."""
    return f'docker -H "$SWARM_ENGINE" swarm init --advertise-addr {shlex.quote(advertise)}'


def render(user_init: str, *, url: str, command: str, engine_labels: dict[str, str],
           role: str, timeout: float) -> str:
    """The whole Init: the variables, the background join, then the spec's own Init
    (``url`` is a shell word, from :func:`engine_url`)."""
    lines = [
        f"# flavor-swarm: this node joins the swarm as a {role}",
        f"SWARM_ENGINE={url}",
        f"SWARM_ENGINE_LABELS={shlex.quote(labels(engine_labels))}",
        'SWARM_ENGINE_SOCKET="${SWARM_ENGINE#unix://}"',
        "export SWARM_ENGINE SWARM_ENGINE_LABELS SWARM_ENGINE_SOCKET",
        "(",
        f"  deadline=$(( $(date +%s) + {int(timeout)} ))",
        '  until docker -H "$SWARM_ENGINE" info >/dev/null 2>&1; do',
        '    [ "$(date +%s)" -lt "$deadline" ] || { echo "flavor-swarm: no engine at '
        '$SWARM_ENGINE" >&2; exit 1; }',
        "    sleep 0.5",
        "  done",
        f"  state=$(docker -H \"$SWARM_ENGINE\" info --format '{GO_STATE}')",
        '  case "$state" in active|pending) exit 0 ;; esac',
        f"  until {command}; do",
        '    [ "$(date +%s)" -lt "$deadline" ] || { echo "flavor-swarm: could not join" >&2; '
        "exit 1; }",
        "    sleep 2",
        "  done",
        ") &",
    ]
    return "\n".join(lines) + "\n" + user_init
