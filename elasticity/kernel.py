"""The chapters' Jupyter kernel, with its traffic encrypted (CurveZMQ) instead of plain TCP.

jupyter_client provisions CurveZMQ keys for a kernel only when its manager is told to
(`KernelManager.transport_encryption`), and neither papermill nor jupyter-book's executor passes that
setting on. The kernelspec can: it names `CurveProvisioner` below (registered as the
`elasticity-curve` kernel provisioner in `pyproject.toml`), which asks for encryption where pyzmq has
CurveZMQ, and declares `supported_encryption: ["curve"]`. Without it, every kernel start logs
"Kernel is running over TCP without encryption".

`python -m elasticity.kernel` installs that kernelspec as `python3` into this environment (the
Makefile's set-up does it).
"""

import json
import sys
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.provisioning import LocalProvisioner

NAME = "python3"
PROVISIONER = "elasticity-curve"


def encryption() -> str:
    """The transport encryption policy to ask for: CurveZMQ where this pyzmq has it."""
    return "auto" if zmq.has("curve") else "disabled"


class CurveProvisioner(LocalProvisioner):  # type: ignore[misc]
    """A local kernel whose manager provisions CurveZMQ keys (written into the connection file)."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("transport_encryption", encryption())
        return await super().pre_launch(**kwargs)


def spec_metadata() -> dict[str, Any]:
    """The kernelspec's metadata: encryption declared, launched through `CurveProvisioner`."""
    return {"supported_encryption": ["curve"], "kernel_provisioner": {"provisioner_name": PROVISIONER, "config": {}}}


def install(prefix: str = sys.prefix, display_name: str = "Python 3 (elasticity)") -> Path:
    """Install the `python3` kernelspec into `prefix` (this environment), with `spec_metadata`."""
    from ipykernel import kernelspec

    folder = Path(kernelspec.install(kernel_name=NAME, display_name=display_name, prefix=prefix))
    spec_file = folder / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["metadata"] = {**spec.get("metadata", {}), **spec_metadata()}
    spec_file.write_text(json.dumps(spec, indent=1) + "\n")
    return folder


if __name__ == "__main__":
    print(f"installed the kernelspec {NAME} (CurveZMQ-encrypted) in {install()}")
