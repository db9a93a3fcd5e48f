"""``instance-aws``: instances are EC2 instances (the Properties of InfraKit's AWS plugin).

- :mod:`.properties`: the Properties (``RunInstancesInput``, ``Tags``) and the RunInstances
  request they make with a Spec;
- :mod:`.failures`: what a failed EC2 call means (throttled, maybe applied, bad credentials …)
  and the error of ours it becomes;
- :mod:`.retry`: backoff with jitter between attempts;
- :mod:`.session`: loading boto3 (the ``aws`` extra) and building the one EC2 client;
- :mod:`.api`: calling EC2 off the event loop, bounded, timed out, retried and counted;
- :mod:`.tokens`: the idempotency tokens that keep a retried Provision from launching twice;
- :mod:`.plugin`: the instance plugin (Provision, Describe, Destroy …);
- :mod:`.serve`: ``infrakit-instance-aws``, the plugin's process and flags.

Needs the ``aws`` extra: ``pip install 'infrakit[aws]'``.
"""
