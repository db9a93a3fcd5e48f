"""``infrakit-instance-aws`` as a process: what cannot work is said at start in one line
naming the cause, and a malformed request never stops the daemon."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from infrakit import errors, testing, testing_aws
from infrakit.rpc import sockets, sync

pytestmark = pytest.mark.slow

BIN = pathlib.Path(sys.executable).parent


@pytest.fixture
def home() -> Iterator[pathlib.Path]:
    """An empty HOME and plugins dir: no ~/.aws to find credentials or a region in."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ika-"))
    try:
        yield directory
    finally:
        subprocess.run(["rm", "-rf", str(directory)], check=False)


def bare_env(home: pathlib.Path, **extra: str) -> dict[str, str]:
    """The environment without any AWS settings (and no instance metadata to ask)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return {**env, "HOME": str(home), "INFRAKIT_PLUGINS_DIR": str(home),
            "AWS_EC2_METADATA_DISABLED": "true", **extra}


def start(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "infrakit-instance-aws"), *argv], env=env, text=True,
                          capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize(("argv", "extra", "code", "words"), [
    ([], {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, 2,
     "no AWS region: pass --region"),
    (["--region", "moon-1"], {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, 2,
     "unknown AWS region 'moon-1' (from --region)"),
    ([], {"AWS_DEFAULT_REGION": "moon-1"}, 2, "(from AWS_DEFAULT_REGION)"),
    (["--region", "us-east-1"], {}, 2, "no AWS credentials found: set AWS_ACCESS_KEY_ID"),
    (["--region", "us-east-1"], {"AWS_PROFILE": "nobody"}, 2, "AWS profile: "),
    (["--region", "us-east-1", "--workers", "0"], {}, 2, "--workers: expected 1 or more"),
    (["--timeout", "soon"], {}, 2, "--timeout: expected a duration"),
])
def test_what_cannot_work_is_one_line_at_start(home: pathlib.Path, argv: list[str],
                                               extra: dict[str, str], code: int,
                                               words: str) -> None:
    done = start(argv, bare_env(home, **extra))
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("infrakit-instance-aws: ")
    assert words in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_without_boto3_the_plugin_says_what_to_install(home: pathlib.Path) -> None:
    script = ("import sys; sys.modules['boto3'] = None\n"
              "from infrakit.plugins.instance.aws import serve\n"
              "serve.run(['--region', 'us-east-1'])")
    done = subprocess.run([sys.executable, "-c", script], env=bare_env(home), text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == ("infrakit-instance-aws: instance-aws needs boto3: "
                           "pip install 'infrakit[aws]'\n")


def test_the_daemon_answers_malformed_requests_and_keeps_serving(
        home: pathlib.Path, moto: testing_aws.MotoServer, ami: str) -> None:
    env = {**testing_aws.environment(bare_env(home)), "INFRAKIT_PLUGINS_DIR": str(home)}
    daemon = subprocess.Popen([str(BIN / "infrakit-instance-aws"), "--endpoint-url", moto.url,
                               "--log", "2"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        testing.wait_for(lambda: sockets.is_live(home / "instance-aws"),
                         what="instance-aws listening", timeout=30)
        client = sync.Client(home / "instance-aws", timeout=30.0)
        for params, words in (
                ({"Spec": {"Properties": "nonsense"}}, "Properties: expected an object"),
                ({"Spec": {"Properties": {"RunInstancesInput": {"ImageId": ami,
                                                                "Count": 2}}}},
                 "Properties.RunInstancesInput.Count: unknown field"),
                ({"Spec": None}, "Spec")):
            with pytest.raises(errors.InvalidError) as caught:
                client.call("Instance.Provision", params)
            assert words in caught.value.message
        client.call("Instance.Validate", {"Properties": {"RunInstancesInput": {"ImageId": ami}}})
        with pytest.raises(errors.NotFoundError, match="no EC2 instance"):
            client.call("Instance.Destroy", {"Instance": "../etc"})
        found = client.call("Instance.DescribeInstances", {"Tags": {"none": "such"}})
        assert found["Descriptions"] == []
        assert daemon.poll() is None
    finally:
        testing.stop_processes([daemon], timeout=10)
