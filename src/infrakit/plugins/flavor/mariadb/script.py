"""The Init script of a member: a plain ``sh`` script any instance plugin can run.

It makes the member's directory (``<DataDir>/<logical ID>``, with a ``tmp`` of its own:
members sharing ``/tmp`` were seen to lose each other's temporary tables), initialises a
datadir there with ``mariadb-install-db`` when there is none (into a temporary name, renamed
when complete, so a crash half-way leaves nothing that looks usable), writes the server's
config and its ``init_file``, then ``exec``s ``mariadbd`` in the foreground. Everything that
varies per member is rendered in here at Prepare time, so the script needs no environment of
its own.

The ``init_file`` runs at every start of the server, before it accepts connections, with binary
logging off (so a restart adds no transaction of its own to any member's GTID history): it
makes the flavor's account and the heartbeat table; on a replica it then points replication at
the primary by GTID (``MASTER_USE_GTID=slave_pos``), retrying the connection every second, and
starts it. A new replica therefore starts empty and catches up from the primary's binary log,
which is kept from the start; a replaced one finds its datadir and goes on from its position.
"""

from __future__ import annotations

import shlex

from infrakit.plugins.flavor.mariadb import config

HEARTBEAT = "infrakit.heartbeat"
"""The table the primary's health check writes to (one row)."""

_SQL_END, _CNF_END = "INFRAKIT_SQL", "INFRAKIT_CNF"


def render(wanted: config.Properties, *, logical_id: str, primary: str) -> str:
    """The Init script of the member ``logical_id`` in a group whose primary is ``primary``."""
    role = config.PRIMARY if logical_id == primary else config.REPLICA
    member = shlex.quote(f"{wanted.data_dir.rstrip('/') or '/'}/{logical_id}")
    path = "" if wanted.bin is None else f'PATH={shlex.quote(wanted.bin)}:"$PATH"; '
    lines = [
        f"# flavor-mariadb: {role} {wanted.address(logical_id)}",
        "set -eu",
        f'{path}PATH="$PATH:/usr/sbin:/usr/local/sbin"; export PATH',
        f"member={member}",
        'mkdir -p "$member/tmp" && member=$(cd "$member" && pwd) && chmod 700 "$member"',
        'if [ ! -d "$member/db/mysql" ]; then',
        '    rm -rf "$member/db.new"',
        '    mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$member/db.new" '
        '--tmpdir="$member/tmp" '
        '--auth-root-authentication-method=socket --skip-test-db >"$member/install.log" 2>&1 '
        '|| { head -n 20 "$member/install.log" >&2; exit 1; }',
        '    mv "$member/db.new" "$member/db"',
        "fi",
        "umask 077",
        f"cat >\"$member/init.sql\" <<'{_SQL_END}'",
        *init_sql(wanted, role=role, primary=primary),
        _SQL_END,
        "{",
        f"cat <<'{_CNF_END}'",
        *server_options(wanted, logical_id=logical_id, role=role),
        _CNF_END,
        "printf '%s\\n' \"datadir = $member/db\" \"socket = $member/mysqld.sock\" "
        "\"pid_file = $member/mysqld.pid\" \"log_error = $member/error.log\" "
        "\"init_file = $member/init.sql\" \"tmpdir = $member/tmp\" \"user = $(id -un)\"",
        *([f"cat <<'{_CNF_END}'", *_extra(wanted), _CNF_END] if wanted.options else []),
        '} >"$member/my.cnf"',
        'exec mariadbd --defaults-file="$member/my.cnf"',
    ]
    return "\n".join(lines)


def server_options(wanted: config.Properties, *, logical_id: str, role: str) -> list[str]:
    """The ``[mariadbd]`` section, but the paths (which the script knows) and ``Options``."""
    lines = [
        "[mariadbd]",
        f"server_id = {config.server_id(logical_id)}",
        f"bind_address = {logical_id}",
        f"port = {wanted.port}",
        "skip_name_resolve = ON",
        "log_bin = mysql-bin",  # kept from the start: a new replica catches up from it
        "log_slave_updates = ON",
        "binlog_format = ROW",
        "gtid_strict_mode = ON",
        "relay_log = relay-bin",
        "relay_log_recovery = ON",  # after a kill -9, fetch again what the relay log lost
    ]
    if role == config.REPLICA:
        lines += ["read_only = ON", f"report_host = {logical_id}", f"report_port = {wanted.port}"]
    return lines


def init_sql(wanted: config.Properties, *, role: str, primary: str) -> list[str]:
    """The ``init_file``: one statement per line, as the server reads it."""
    account = f"{_quote(wanted.user)}@'%'"
    password = _quote(wanted.password.get_secret_value())
    lines = [
        "SET SESSION sql_log_bin = 0;",
        f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {password};",
        f"ALTER USER {account} IDENTIFIED BY {password};",
        f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;",
        "CREATE DATABASE IF NOT EXISTS infrakit;",
        f"CREATE TABLE IF NOT EXISTS {HEARTBEAT} (id INT PRIMARY KEY, "
        "server_id INT UNSIGNED NOT NULL, at TIMESTAMP(6) NOT NULL);",
        "STOP SLAVE;",
    ]
    if role == config.PRIMARY:
        return [*lines, "RESET SLAVE ALL;"]  # in case this member was a replica before
    return [
        *lines,
        f"CHANGE MASTER TO MASTER_HOST={_quote(primary)}, MASTER_PORT={wanted.port}, "
        f"MASTER_USER={_quote(wanted.user)}, MASTER_PASSWORD={password}, "
        "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;",
        "START SLAVE;",
    ]


def _extra(wanted: config.Properties) -> list[str]:
    return [f"{key} = {value}" for key, value in wanted.options.items()]


def _quote(text: str) -> str:
    """An SQL string literal (the server's default mode reads backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
