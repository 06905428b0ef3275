"""Tests of elasticity.kernel: the chapters' kernel starts with CurveZMQ keys and without the plain-TCP warning."""

import json
import sys
from importlib.metadata import entry_points

import pytest
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

from elasticity import kernel

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this pyzmq has no CurveZMQ")


@pytest.fixture
def spec_dir(tmp_path, monkeypatch):
    """The kernelspec installed into a throwaway prefix, which jupyter_client then searches first."""
    folder = kernel.install(prefix=str(tmp_path))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    return folder


def test_provisioner_is_registered_under_the_name_the_spec_uses():
    found = entry_points(group="jupyter_client.kernel_provisioners", name=kernel.PROVISIONER)
    assert [ep.load() for ep in found] == [kernel.CurveProvisioner]


def test_install_writes_a_spec_that_declares_and_provisions_curve(spec_dir):
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert spec["metadata"]["supported_encryption"] == ["curve"]
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == kernel.PROVISIONER
    assert spec["metadata"]["debugger"] is True  # what ipykernel writes is kept


def test_kernel_runs_code_over_curve_without_the_warning(spec_dir, tmp_path):
    assert KernelSpecManager().get_kernel_spec(kernel.NAME).resource_dir == str(spec_dir)
    log, outputs = tmp_path / "kernel.log", []
    with log.open("w") as stderr:
        manager, client = start_new_kernel(kernel_name=kernel.NAME, stderr=stderr)
        try:
            assert manager.curve_publickey is not None and manager.curve_secretkey is not None
            written = json.loads(open(manager.connection_file).read())
            assert written["curve_publickey"] == manager.curve_publickey.decode()
            reply = client.execute_interactive("print(6 * 7)", timeout=60, output_hook=outputs.append)
            assert reply["content"]["status"] == "ok"
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    assert any(msg["content"].get("text") == "42\n" for msg in outputs)
    assert "without encryption" not in log.read_text()


def test_this_environment_runs_chapters_in_that_kernel():
    """What the Makefile's set-up installed: the `python3` kernel papermill and jupyter-book start is this one."""
    spec = KernelSpecManager().get_kernel_spec(kernel.NAME)
    assert spec.metadata["kernel_provisioner"]["provisioner_name"] == kernel.PROVISIONER
    assert spec.argv[0] == sys.executable
