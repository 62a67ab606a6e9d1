"""--attention BACKEND: which kernel computes the denoiser's attention, through diffusers'
attention dispatch (``ModelMixin.set_attention_backend``, ``diffusers.models.attention_dispatch``).

diffusers checks a backend's package when it is set (after the model has loaded) and its device
only when attention first runs (inside the first step). vidlatent checks both before anything
loads, from the table below: the package is installed at the version diffusers needs, and the
device can run the kernel (CUDA, compute capability, half precision). A backend that cannot run
here is refused in one line that says what is missing and which backends would work.

Torch-free: the CUDA driver is asked about its devices directly, so that a refusal comes in a
blink, before torch is imported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from vidlatent.errors import UsageError

DEFAULT_BACKEND = "native"  # torch's scaled_dot_product_attention: what diffusers runs unless told otherwise


@dataclass(frozen=True)
class Backend:
    """One of diffusers' attention backends (``AttentionBackendName``) and what it needs.

    Args:
        name: diffusers' name for it.
        package: the pip distribution that provides it (None: torch itself).
        module: the module diffusers imports from that distribution.
        minimum: the oldest version diffusers accepts (``_REQUIRED_*_VERSION``, ``is_kernels_version``).
        cuda: runs on CUDA devices only.
        capability: the oldest CUDA compute capability the kernels are built for.
        half: takes fp16/bf16 only (diffusers' ``_check_qkv_dtype_bf16_or_fp16``).
        context_parallel: diffusers can split it over processes (``supports_context_parallel``).
        what: a few words for --help and ``vidlatent env``.
    """

    name: str
    package: str | None = None
    module: str | None = None
    minimum: str | None = None
    cuda: bool = False
    capability: tuple[int, int] | None = None
    half: bool = False
    context_parallel: bool = False
    what: str = ""


# The public members of diffusers' AttentionBackendName that run on NVIDIA GPUs or anywhere
# (the leading-underscore ones are diffusers' internal variants; NPU, XLA and AMD's are left out).
# FlashAttention 2 and SageAttention 2 ship kernels for Ampere (8.0) and newer; FlashAttention 4
# for Hopper (9.0) and newer; SageAttention's Blackwell kernels for 10.0 and newer.
BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    Backend("native", context_parallel=True, what="torch's scaled_dot_product_attention (the default)"),
    Backend("flex", "torch", "torch", "2.5.0", what="torch's flex_attention"),
    Backend("flash", "flash-attn", "flash_attn", "2.6.3", cuda=True, capability=(8, 0), half=True, context_parallel=True,
            what="FlashAttention 2"),
    Backend("flash_varlen", "flash-attn", "flash_attn", "2.6.3", cuda=True, capability=(8, 0), half=True,
            what="FlashAttention 2, variable length"),
    Backend("flash_hub", "kernels", "kernels", "0.12", cuda=True, capability=(8, 0), half=True, context_parallel=True,
            what="FlashAttention 2 from the Hugging Face kernel hub"),
    Backend("flash_varlen_hub", "kernels", "kernels", "0.12", cuda=True, capability=(8, 0), half=True,
            context_parallel=True, what="FlashAttention 2, variable length, from the kernel hub"),
    Backend("flash_4_hub", "kernels", "kernels", "0.12.3", cuda=True, capability=(9, 0), half=True,
            what="FlashAttention 4 from the kernel hub"),
    Backend("sage", "sageattention", "sageattention", "2.1.1", cuda=True, capability=(8, 0), half=True,
            context_parallel=True, what="SageAttention 2 (8-bit)"),
    Backend("sage_varlen", "sageattention", "sageattention", "2.1.1", cuda=True, capability=(8, 0), half=True,
            what="SageAttention 2, variable length"),
    Backend("sage_hub", "kernels", "kernels", "0.12", cuda=True, capability=(8, 0), half=True, context_parallel=True,
            what="SageAttention from the kernel hub"),
    Backend("sage_blackwell_hub", "kernels", "kernels", "0.12", cuda=True, capability=(10, 0), half=True,
            what="SageAttention for Blackwell from the kernel hub"),
    Backend("xformers", "xformers", "xformers", "0.0.29", cuda=True, what="xFormers memory-efficient attention"),
)}


def _installed(backend: Backend) -> str | None:
    """What is missing of the backend's package (None: nothing)."""
    import importlib.metadata  # here: it imports the email package, a tenth of a second at start-up
    import importlib.util

    if backend.package is None:
        return None
    wanted = f"{backend.package}>={backend.minimum}" if backend.minimum else backend.package
    try:
        version = importlib.metadata.version(backend.package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is None or importlib.util.find_spec(backend.module or backend.package) is None:
        return f"the {backend.package} package, which is not installed (pip install \"{wanted}\")"
    if backend.minimum:
        from packaging.version import InvalidVersion, Version

        try:
            old = Version(version) < Version(backend.minimum)
        except InvalidVersion:
            old = False
        if old:
            return f"{wanted}; {version} is installed (pip install -U \"{wanted}\")"
    return None


def _cuda_index(device: str) -> int:
    """The CUDA device ``--device`` picks: cuda:N, else the first."""
    return int(device.partition(":")[2] or 0) if device.startswith("cuda:") else 0


@functools.lru_cache(maxsize=1)
def cuda_devices() -> tuple[tuple[str, tuple[int, int]], ...]:
    """The CUDA devices (name, compute capability), asked of the driver (libcuda) directly, in
    milliseconds and without importing torch; none where there is no driver or no device.
    CUDA_VISIBLE_DEVICES applies, as it does to torch."""
    import ctypes

    driver = None
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):  # the driver's sonames (ctypes.util.find_library is slow)
        try:
            driver = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if driver is None or driver.cuInit(0) != 0:
        return ()
    count = ctypes.c_int()
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return ()
    found = []
    for index in range(count.value):
        device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        label = ctypes.create_string_buffer(256)
        driver.cuDeviceGet(ctypes.byref(device), index)
        driver.cuDeviceGetName(label, 256, device)
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR (75) and _MINOR (76), cuda.h
        driver.cuDeviceGetAttribute(ctypes.byref(major), 75, device)
        driver.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)
        found.append((label.value.decode(errors="replace"), (major.value, minor.value)))
    return tuple(found)


def missing(backend: Backend, device: str = "auto", dtype: str = "auto") -> str | None:
    """What ``backend`` lacks to run with ``--device device --dtype dtype`` here, as the words
    after "needs"; None when it can run."""
    lacking = _installed(backend)
    if lacking is not None:
        return lacking
    if backend.half and dtype == "fp32":
        return "fp16 or bf16 weights (--dtype fp32 given)"
    if not backend.cuda:
        return None
    if device in ("cpu", "mps"):
        return f"a CUDA GPU (--device {device})"
    devices = cuda_devices()
    index = _cuda_index(device)
    if index >= len(devices):
        return "a CUDA GPU, and none is available" if not devices else f"a CUDA GPU; there is no cuda:{index}"
    name, capability = devices[index]
    if backend.capability is not None and capability < backend.capability:
        return (f"a GPU of compute capability {backend.capability[0]}.{backend.capability[1]} or newer; "
                f"{name} is {capability[0]}.{capability[1]}")
    return None


def usable(device: str = "auto", dtype: str = "auto") -> list[str]:
    """The backends that can run here with these flags."""
    return [name for name, backend in BACKENDS.items() if missing(backend, device, dtype) is None]


def check(name: str, device: str = "auto", dtype: str = "auto", *, flag: str = "--attention") -> str:
    """``name`` if that backend can run with ``--device device --dtype dtype`` here; otherwise a
    UsageError naming what is missing and the backends that would work. Returns the name."""
    backend = BACKENDS.get(name)
    if backend is None:
        raise UsageError(f"{flag} {name!r}: expected one of {', '.join(BACKENDS)}")
    lacking = missing(backend, device, dtype)
    if lacking is not None:
        raise UsageError(f"{flag} {name}: {backend.what} needs {lacking}; usable here: {', '.join(usable(device, dtype))}")
    return name
