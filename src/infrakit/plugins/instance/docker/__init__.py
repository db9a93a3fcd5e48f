"""``instance-docker``: instances are containers on a Docker engine (drop-in for v0.5's).

- :mod:`.engine`: our asyncio client for the Engine API (and why not the Docker SDK);
- :mod:`.layout`: the Properties, ours or the original's ``Config``/``HostConfig``;
- :mod:`.plugin`: the instance plugin (Provision, Describe, Destroy …);
- :mod:`.events`: the event stream that wakes the group when a container dies;
- :mod:`.serve`: ``infrakit-instance-docker``, the plugin's process and flags.
"""
