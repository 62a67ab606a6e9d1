"""The one model loader every command uses.

It decides, in one place: which folder a ``--model`` names (alias, local diffusers folder, hub
id, or ``tiny-random``), which device (CUDA, then MPS, then CPU), which dtype (fp16 on GPUs,
fp32 on CPU), which weight variant (fp16 files where the folder has them), and whether to
offload to the CPU (through diffusers/accelerate). Only safetensors weights are loaded and no
remote code runs. Commands ask only for the components they need.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.errors import ModelError, UsageError

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"
ALIASES = {
    "svd": "stabilityai/stable-video-diffusion-img2vid",
    "svd-xt": "stabilityai/stable-video-diffusion-img2vid-xt",
}
TINY_RANDOM = "tiny-random"
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
DTYPES = ("auto", "fp16", "bf16", "fp32")
OFFLOADS = ("auto", "none", "model", "sequential")
PIPELINE_COMPONENTS = ("vae", "image_encoder", "unet", "scheduler", "feature_extractor")
# SVD's native area, 1024x576; used when a folder's UNet config does not say.
DEFAULT_NATIVE_AREA = 1024 * 576
# With auto offload, a GPU with less memory than this runs the full pipeline with model offload.
AUTO_OFFLOAD_BELOW_BYTES = 16 * 2**30

Note = Callable[[str], None]


def _silent(_: str) -> None:
    pass


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model; every field is a command-line flag of the same name.

    Args:
        model: alias (svd, svd-xt), hub id, local diffusers folder, or ``tiny-random``.
        device: auto, cpu, cuda, cuda:N or mps.
        dtype: auto, fp16, bf16 or fp32.
        offload: auto, none, model or sequential.
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    offload: str = "auto"

    def validate(self) -> None:
        """Raise UsageError for a bad device, dtype or offload name (cheap, before loading)."""
        if self.device not in DEVICES and not _is_cuda_index(self.device):
            raise UsageError(f"--device {self.device!r}: expected one of {', '.join(DEVICES)} or cuda:N")
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype {self.dtype!r}: expected one of {', '.join(DTYPES)}")
        if self.offload not in OFFLOADS:
            raise UsageError(f"--offload {self.offload!r}: expected one of {', '.join(OFFLOADS)}")


def _is_cuda_index(device: str) -> bool:
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()


@dataclass
class LoadedModel:
    """A loaded model and the decisions the loader made.

    ``pipeline`` is a StableVideoDiffusionPipeline whose unrequested components are None; for
    VAE-only loads it is None and ``vae`` carries the VAE.
    """

    model_id: str
    folder: Path
    device: torch.device
    dtype: torch.dtype
    offload: str
    vae: Any
    latent_space: str
    native_area: int
    pipeline: Any = None
    components: tuple[str, ...] = field(default=())

    @property
    def execution_device(self) -> torch.device:
        """Where inputs must go: the GPU even when weights are offloaded to the CPU."""
        return self.device


def resolve_device(name: str, note: Note = _silent) -> torch.device:
    """Turn a --device value into a torch.device; ``auto`` picks CUDA, then MPS, then CPU."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: MPS is not available on this machine; use --device cpu or auto")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device, note: Note = _silent) -> torch.dtype:
    """Turn a --dtype value into a torch dtype; ``auto`` is fp16 on CUDA/MPS and fp32 on CPU."""
    import torch

    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if name == "fp16" and device.type == "cpu":
        note("fp16 is not supported on CPU; using fp32 instead")
        return torch.float32
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def resolve_offload(name: str, device: torch.device, components: Sequence[str]) -> str:
    """Turn a --offload value into none, model or sequential."""
    if device.type == "cpu":
        if name in ("model", "sequential"):
            raise UsageError(f"--offload {name} moves weights between a GPU and the CPU; it needs --device cuda")
        return "none"
    if name != "auto":
        return name
    if device.type == "cuda" and "unet" in components:
        import torch

        total = torch.cuda.get_device_properties(device).total_memory
        return "model" if total < AUTO_OFFLOAD_BELOW_BYTES else "none"
    return "none"


def model_folder(model: str, components: Sequence[str], *, fp16: bool = False) -> Path:
    """Find (or download once) the diffusers folder that ``model`` names.

    Args:
        model: alias, hub id, local folder or ``tiny-random``.
        components: the components whose weights must be present.
        fp16: prefer the fp16 weight variant when downloading.
    """
    if model == TINY_RANDOM:
        from vidlatent.tiny import tiny_random_path

        return tiny_random_path()
    model = ALIASES.get(model, model)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"--model {model}: the folder has no model_index.json; expected a diffusers model folder")
        return path
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelError(
            f"--model {model}: no such model folder; give a diffusers folder, a hub id such as {DEFAULT_MODEL}, "
            f"an alias ({', '.join(ALIASES)}) or {TINY_RANDOM}"
        )
    return _hub_snapshot(model, components, fp16=fp16)


def _hub_snapshot(repo_id: str, components: Sequence[str], *, fp16: bool) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    weights = [f"{name}/*{'.fp16' if fp16 else ''}.safetensors" for name in components if name != "scheduler"]
    # Configs are small: all of them come along so that any command can read any config.
    patterns = ["model_index.json", "*/*.json", "*/*.txt", *weights]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, FileNotFoundError):
        pass
    how = ("connect to the internet once to download it, pass --model PATH to a diffusers folder, "
           "or try vidlatent offline with --model tiny-random (a tiny random model: its output is noise)")
    if constants.HF_HUB_OFFLINE:
        raise ModelError(f"model {repo_id} is not on disk and HF_HUB_OFFLINE is set; {how}")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except (HfHubHTTPError, OSError, LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(f"model {repo_id} is not on disk and cannot be downloaded ({reason}); {how}") from error


def _variant(folder: Path, components: Sequence[str], dtype: torch.dtype) -> str | None:
    """``fp16`` when loading in fp16 and every weighted component has fp16 files."""
    import torch

    if dtype != torch.float16:
        return None
    weighted = [name for name in components if name not in ("scheduler", "feature_extractor")]
    has_fp16 = all(any((folder / name).glob("*.fp16.safetensors")) for name in weighted)
    return "fp16" if has_fp16 else None


def native_area(folder: Path) -> int:
    """The pixel area the model was trained at: (UNet sample_size x 8)^2, else SVD's 1024x576."""
    try:
        config = json.loads((folder / "unet" / "config.json").read_text())
        vae_blocks = len(json.loads((folder / "vae" / "config.json").read_text())["block_out_channels"])
        return int((config["sample_size"] * 2 ** (vae_blocks - 1)) ** 2)
    except (OSError, KeyError, TypeError, ValueError):
        return DEFAULT_NATIVE_AREA


def _quiet_libraries() -> None:
    # diffusers/transformers print progress bars and advice on stdout/stderr; stdout may carry
    # latent bytes and stderr belongs to our own progress, so they are silenced.
    import diffusers.utils.logging as diffusers_logging

    # Errors too: diffusers logs failures it then raises, and those become our one-line errors.
    diffusers_logging.set_verbosity(diffusers_logging.CRITICAL)
    diffusers_logging.disable_progress_bar()
    try:
        import transformers.utils.logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except ImportError:
        pass


def _placement(options: LoadOptions, components: Sequence[str], note: Note) -> tuple[torch.device, torch.dtype, str]:
    options.validate()
    device = resolve_device(options.device, note)
    dtype = resolve_dtype(options.dtype, device, note)
    offload = resolve_offload(options.offload, device, components)
    return device, dtype, offload


def _model_id(options: LoadOptions, folder: Path) -> str:
    # Recorded in latent files: a hub id stays a hub id, a folder becomes an absolute path.
    model = ALIASES.get(options.model, options.model)
    return str(folder.resolve()) if Path(model).expanduser().is_dir() else model


def load_vae(options: LoadOptions, note: Note = _silent) -> LoadedModel:
    """Load only the VAE of ``options.model`` (for encode and decode)."""
    device, dtype, _ = _placement(options, ("vae",), note)
    folder = model_folder(options.model, ("vae",), fp16=dtype == _fp16())
    _check_pipeline_class(folder, options.model)
    _quiet_libraries()
    from diffusers import AutoencoderKLTemporalDecoder

    vae = _load_component(
        lambda: AutoencoderKLTemporalDecoder.from_pretrained(
            folder, subfolder="vae", torch_dtype=dtype, variant=_variant(folder, ("vae",), dtype), use_safetensors=True
        ),
        options.model,
    )
    space = latent_space_of(vae)
    vae.to(device)
    vae.eval()
    return LoadedModel(
        model_id=_model_id(options, folder),
        folder=folder,
        device=device,
        dtype=dtype,
        offload="none",
        vae=vae,
        latent_space=space,
        native_area=native_area(folder),
        components=("vae",),
    )


def load_pipeline(options: LoadOptions, components: Sequence[str] = PIPELINE_COMPONENTS, note: Note = _silent) -> LoadedModel:
    """Load a StableVideoDiffusionPipeline with only ``components`` (the rest are None)."""
    device, dtype, offload = _placement(options, components, note)
    folder = model_folder(options.model, components, fp16=dtype == _fp16())
    _check_pipeline_class(folder, options.model)
    _quiet_libraries()
    from diffusers import StableVideoDiffusionPipeline

    skipped = {name: None for name in PIPELINE_COMPONENTS if name not in components}
    pipeline = _load_component(
        lambda: StableVideoDiffusionPipeline.from_pretrained(
            folder, torch_dtype=dtype, variant=_variant(folder, components, dtype), use_safetensors=True, **skipped
        ),
        options.model,
    )
    space = latent_space_of(pipeline.vae) if pipeline.vae is not None else ""
    if offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipeline.enable_sequential_cpu_offload(device=device)
    else:
        pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return LoadedModel(
        model_id=_model_id(options, folder),
        folder=folder,
        device=device,
        dtype=dtype,
        offload=offload,
        vae=pipeline.vae,
        latent_space=space,
        native_area=native_area(folder),
        pipeline=pipeline,
        components=tuple(components),
    )


def _fp16() -> torch.dtype:
    import torch

    return torch.float16


def _check_pipeline_class(folder: Path, model: str) -> None:
    try:
        name = json.loads((folder / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError) as error:
        raise ModelError(f"--model {model}: model_index.json cannot be read ({error})") from error
    if name != "StableVideoDiffusionPipeline":
        raise ModelError(f"--model {model}: is a {name}, not a Stable Video Diffusion model (StableVideoDiffusionPipeline)")


def _load_component(load: Callable[[], Any], model: str) -> Any:
    import warnings

    try:
        with warnings.catch_warnings():
            # diffusers renames torch_dtype to dtype; the old name works across the versions we support.
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return load()
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"--model {model}: cannot be loaded ({reason}); vidlatent loads diffusers folders with safetensors weights") from error


def latent_space_of(vae: Any) -> str:
    """The LatentSpace string of a VAE: class, latent channels, scaling factor and fingerprint.

    The fingerprint is four fixed random projections of the VAE's output convolutions,
    normalised by their norm, so each number is of order one and barely moves between the
    fp32, fp16 and bf16 copies of one VAE (well inside the 0.05 tolerance), while two different
    VAEs disagree by order one.
    """
    import torch

    from vidlatent.latentfile import LatentSpace

    weights = torch.cat(
        [vae.encoder.conv_out.weight.detach().flatten(), vae.decoder.conv_out.weight.detach().flatten()]
    ).to("cpu", torch.float64)
    generator = torch.Generator().manual_seed(20231121)
    projections = torch.randn(4, weights.numel(), generator=generator, dtype=torch.float64)
    fingerprint = projections @ (weights / weights.norm())
    space = LatentSpace(
        vae=type(vae).__name__,
        channels=int(vae.config.latent_channels),
        scaling_factor=float(vae.config.scaling_factor),
        fingerprint=tuple(round(float(value), 4) for value in fingerprint),
    )
    return str(space)
