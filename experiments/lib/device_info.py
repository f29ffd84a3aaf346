"""What a device's numbers were measured on: device, versions, driver, what ``auto`` picks.

``experiments.accelerator`` puts it in its report and ``results.json``.
"""

import platform
import subprocess
from typing import Any

import jax

from rnn_jax.cells import CELLS
from rnn_jax.layers import RecurrenceOptions, resolve


def nvidia_smi() -> str:
    """``nvidia-smi``'s name and driver of every GPU (``; ``-separated), or ``"n/a"``."""
    command = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):  # No such program, no GPU, or it hung.
        return "n/a"
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return "; ".join(lines) or "n/a"


def torch_versions(available: bool) -> dict | None:
    """PyTorch's version and the CUDA and cuDNN it was built with (None without PyTorch)."""
    if not available:
        return None
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": cudnn,
    }


def environment(torch: bool, on_gpu: bool) -> dict[str, Any]:
    """What the numbers were measured on: device, versions, driver, and what ``auto`` picks.

    Args:
      torch: PyTorch is a peer in this run (its versions are recorded).
      on_gpu: the default backend is a GPU.
    """
    import jaxlib

    device = jax.devices()[0]
    smi = nvidia_smi()
    return {
        "device_kind": device.device_kind,
        "platform": device.platform,
        "platform_version": getattr(device.client, "platform_version", "n/a"),
        "local_device_count": jax.local_device_count(),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "python": platform.python_version(),
        "nvidia_smi": smi,
        "nvidia_driver": smi.split(";")[0].split(",")[-1].strip() if smi != "n/a" else "n/a",
        "default_matmul_precision": jax.config.jax_default_matmul_precision or "default",
        "torch": torch_versions(torch),
        # What the "auto" settings resolve to on this backend (the GPU/TPU defaults are guesses
        # until a run like this one is committed).
        "auto_input_projection": "before_scan" if auto("gru").project_before_scan else "in_step",
        "auto_time_parallel": "parallel" if auto("mingru").parallel else "sequential",
        "auto_lstm_backend": "cudnn" if auto("lstm").path == "fused" else "scan",
    }


def auto(cell: str):
    """What ``"auto"`` resolves to on this backend for a layer of the registered ``cell``."""
    return resolve(CELLS[cell](features=1), RecurrenceOptions())


def environment_text(env: dict) -> str:
    """The environment as one Markdown paragraph."""
    torch = env["torch"]
    torch_text = (
        "not used"
        if torch is None
        else f"{torch['version']} (CUDA {torch['cuda']}, cuDNN {torch['cudnn']}, "
        f"CUDA available: {torch['cuda_available']})"
    )
    return (
        f"Device: **{env['device_kind']}** ({env['platform']}, {env['platform_version']}), "
        f"{env['local_device_count']} local device(s); JAX {env['jax_version']}, jaxlib "
        f"{env['jaxlib_version']}, Python {env['python']}; nvidia-smi: {env['nvidia_smi']} "
        f"(driver {env['nvidia_driver']}); default matmul precision: "
        f"{env['default_matmul_precision']}; PyTorch: {torch_text}. On this backend `auto` "
        f"means input_projection={env['auto_input_projection']}, "
        f"time_parallel={env['auto_time_parallel']}, lstm_backend={env['auto_lstm_backend']}."
    )
