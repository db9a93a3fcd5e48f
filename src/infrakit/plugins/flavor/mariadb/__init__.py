"""The ``flavor-mariadb`` plugin: a MariaDB primary and its replicas as a group of pets.

Each logical ID is a member's address; the first (or ``Properties.Primary``) is the primary,
the others replicate from it by GTID. The package, by idea:

- :mod:`.config`: the Properties, their checks, a member's role and ``server_id``;
- :mod:`.script`: the member's Init, a plain ``sh`` script (install a datadir when there is
  none, write the server's config, ``exec mariadbd``);
- :mod:`.probe`: checks of live members (PyMySQL, off the event loop, with timeouts);
- :mod:`.state`: what a check found; :mod:`.decide`: verdicts, removal gates and order from it;
- :mod:`.plugin`: the flavor object; :mod:`.serve`: ``infrakit-flavor-mariadb``.
"""
