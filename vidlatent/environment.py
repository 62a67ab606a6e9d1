"""What this installation has: versions, devices, and what ``auto`` would pick (``vidlatent env``)."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ffmpeg() -> dict[str, Any]:
    import imageio_ffmpeg

    return {"path": imageio_ffmpeg.get_ffmpeg_exe(), "version": imageio_ffmpeg.get_ffmpeg_version()}


def _devices() -> list[dict[str, Any]]:
    import torch

    devices: list[dict[str, Any]] = [{"name": "cpu", "kind": "cpu"}]
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        properties = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        devices.append({"name": f"cuda:{index}", "kind": "cuda", "model": properties.name,
                        "memory_total_gb": round(total / 2**30, 2), "memory_free_gb": round(free / 2**30, 2)})
    if torch.backends.mps.is_available():
        devices.append({"name": "mps", "kind": "mps"})
    return devices


def _acceleration(device: Any) -> dict[str, Any]:
    """What vidlatent.acceleration can use here: CUDA streams (group offload overlaps transfers
    with compute on them), fp8 weight storage, the compile backend and whether it can build
    (inductor needs a C++ compiler on the CPU and triton on CUDA), LoRA (peft)."""
    import importlib.util
    import shutil

    import torch

    from vidlatent.acceleration import DEFAULT_COMPILE_BACKEND, compile_backend

    backend = compile_backend()
    compiler = next((found for name in ("c++", "g++", "clang++") if (found := shutil.which(name))), None)
    triton = importlib.util.find_spec("triton") is not None
    ready = backend != DEFAULT_COMPILE_BACKEND or (compiler is not None and (device.type != "cuda" or triton))
    return {
        "cuda_streams": torch.cuda.is_available(),
        "fp8_storage": hasattr(torch, "float8_e4m3fn") and device.type != "mps",
        "compile_backend": backend,
        "compile_ready": ready,
        "cpp_compiler": compiler,
        "triton": triton,
        "lora": _version("peft") is not None,
        "attention": _attention(),
    }


def _attention() -> dict[str, str | None]:
    """Each --attention backend: None where it can run here (--device auto), else what it needs."""
    from vidlatent.attention import BACKENDS, missing

    return {name: missing(backend) for name, backend in BACKENDS.items()}


def describe_environment() -> dict[str, Any]:
    """Everything a bug report needs, as a JSON-ready dict."""
    import os

    import torch
    from huggingface_hub import constants

    from vidlatent import __version__
    from vidlatent.acceleration import DENOISERS
    from vidlatent.models import resolve_device, resolve_dtype, resolve_offload
    from vidlatent.tiny import cache_root

    device = resolve_device("auto")
    return {
        "vidlatent": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in ("torch", "diffusers", "transformers", "accelerate",
                                                         "safetensors", "huggingface-hub", "imageio-ffmpeg", "click", "peft")},
        "ffmpeg": _ffmpeg(),
        "devices": _devices(),
        "auto": {
            "device": str(device),
            "dtype": str(resolve_dtype("auto", device)).removeprefix("torch."),
            "offload_generate": resolve_offload("auto", device, DENOISERS),
            "offload_decode": resolve_offload("auto", device, ("vae",)),
        },
        "acceleration": _acceleration(device),
        "torch_threads": torch.get_num_threads(),
        "cache": {"huggingface": str(constants.HF_HUB_CACHE), "hub_offline": bool(constants.HF_HUB_OFFLINE),
                  "vidlatent": str(cache_root())},
        "environment": {name: os.environ[name] for name in sorted(os.environ) if name.startswith(("VIDLATENT_", "HF_"))
                        and "TOKEN" not in name},
    }
