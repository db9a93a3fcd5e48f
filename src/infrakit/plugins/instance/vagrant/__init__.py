"""``instance-vagrant``: instances are Vagrant machines, one directory each (drop-in for v0.5's).

- :mod:`.properties`: the Properties (v0.5's ``Box``, ``CPUs``, ``Memory``; the docker
  provider's ``Image``, ``Cmd``, ``Env``; ``Provider``);
- :mod:`.template`: the Vagrantfile template, built in or the user's, and what it sees;
- :mod:`.machines`: the directory of machines, each with its record of tags and LogicalID;
- :mod:`.commands`: ``vagrant up``/``destroy``/``status`` as asyncio subprocesses;
- :mod:`.plugin`: the instance plugin (Provision, Describe, Destroy …);
- :mod:`.serve`: ``infrakit-instance-vagrant``, the plugin's process and flags.
"""
