"""The one model loader every command uses.

It decides, in one place: which folder a ``--model`` names (alias, local diffusers folder, hub
id, or a tiny random model), which model family runs it (from the folder's
``model_index.json``), which device (CUDA, then MPS, then CPU), which dtype (on a GPU the
family's: fp16 for SVD, bf16 for Wan and LTX where the GPU has it; fp32 on CPU), which weight variant (fp16 files where the folder has them), whether to
offload to the CPU (through diffusers/accelerate), and what ``vidlatent.acceleration`` applies
(LoRA, fp8 storage, step cache, compilation, VAE tiling). Only safetensors weights are loaded
and no remote code runs. Commands ask only for the components they need.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent import families
from vidlatent.acceleration import DENOISERS, Acceleration, Applied, apply_before_placement, apply_compile, check_fits
from vidlatent.component_files import ComponentFile, check_component_files, load_component_file, loaded_bytes
from vidlatent.lora_files import load_loras, read_loras
from vidlatent.errors import ModelError, UsageError
from vidlatent.tiny import quiet_libraries, tiny_random_path

if TYPE_CHECKING:
    import torch

    from vidlatent.families.base import Family, ModelSpec
    from vidlatent.layout import LatentLayout

ALIASES = families.aliases()
DEFAULT_MODEL = families.default_model()
TINY_MODELS = tuple(families.tiny_models())
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
DTYPES = ("auto", "fp16", "bf16", "fp32")
OFFLOADS = ("auto", "none", "model", "group", "sequential")
# The default model's components.
PIPELINE_COMPONENTS = families.family(families.DEFAULT_FAMILY).components
# Components that have no weight files.
WEIGHTLESS = ("scheduler", "feature_extractor", "tokenizer", "image_processor")
# What auto offload keeps free on the GPU beside the weights: activations and the VAE's decode.
AUTO_OFFLOAD_RESERVE_BYTES = 3 * 2**30
# Bytes per element of the safetensors dtypes (for weight sizes read from file headers).
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U8": 1, "BOOL": 1}

Note = Callable[[str], None]


def _silent(_: str) -> None:
    pass


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model; every field is a command-line flag of the same name.

    Args:
        model: alias (svd, svd-xt, wan21-i2v-480p, ltx-0.9.7-dev, ...), hub id, local diffusers
            folder, or a tiny random model (``TINY_MODELS``: tiny-random, tiny-random-wan, ...).
        device: auto, cpu, cuda, cuda:N or mps.
        dtype: auto, fp16, bf16 or fp32.
        offload: auto, none, model, group or sequential.
        acceleration: --cache, --compile, --quantize, --vae-tiling and --lora.
        components: --transformer and --transformer-2: components loaded from single files
            instead of the model's folder (which supplies their configs).
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    offload: str = "auto"
    acceleration: Acceleration = Acceleration()
    components: tuple[ComponentFile, ...] = ()

    def validate(self) -> None:
        """Raise UsageError for a bad device, dtype, offload name or acceleration (cheap, before loading)."""
        if self.device not in DEVICES and not _is_cuda_index(self.device):
            raise UsageError(f"--device {self.device!r}: expected one of {', '.join(DEVICES)} or cuda:N")
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype {self.dtype!r}: expected one of {', '.join(DTYPES)}")
        if self.offload not in OFFLOADS:
            raise UsageError(f"--offload {self.offload!r}: expected one of {', '.join(OFFLOADS)}")
        self.acceleration.validate()
        for file in self.components:
            file.check()
            if file.gguf and self.acceleration.quantize is not None:
                raise UsageError(f"--quantize {self.acceleration.quantize}: {file.flag} {file.path} is quantised already "
                                 "(GGUF); leave --quantize out")


def _is_cuda_index(device: str) -> bool:
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()


@dataclass(frozen=True)
class ModelInfo:
    """What a --model names, read from its configs before any weights load."""

    model_id: str  # recorded in latent files: a hub id, a tiny model's name, or an absolute folder
    folder: Path | None  # None for a known hub checkpoint that is not on disk
    family: Family
    spec: ModelSpec


@dataclass
class LoadedModel:
    """A loaded model and the decisions the loader made.

    ``pipeline`` is the family's diffusers pipeline whose unrequested components are None; for
    VAE-only loads it is None and ``vae`` carries the VAE.
    """

    model_id: str
    folder: Path
    device: torch.device
    dtype: torch.dtype
    offload: str
    vae: Any
    latent_space: str
    family: Family
    spec: ModelSpec
    layout: LatentLayout
    pipeline: Any = None
    components: tuple[str, ...] = field(default=())
    accelerated: Applied = field(default_factory=Applied)  # what vidlatent.acceleration applied
    # The sound's decoder, where the family makes sound and it was asked for (``load_vae(sound=True)``):
    # its components by name (LTX-2: audio_vae, vocoder).
    sound: dict[str, Any] | None = None

    @property
    def execution_device(self) -> torch.device:
        """Where inputs must go: the GPU even when weights are offloaded to the CPU."""
        return self.device

    @property
    def native_area(self) -> int:
        return self.spec.native_area

    def sound_decoder(self) -> dict[str, Any] | None:
        """The components that decode the family's sound (``Family.sound``), by name: loaded with the
        VAE (``load_vae(sound=True)``) or part of the pipeline; None where there are none."""
        if self.sound is not None:
            return self.sound
        declared = self.family.sound
        if declared is None or self.pipeline is None:
            return None
        found = {name: getattr(self.pipeline, name, None) for name in declared.components}
        return found if all(component is not None for component in found.values()) else None


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


def resolve_dtype(name: str, device: torch.device, note: Note = _silent, *, preferred: str = "fp16") -> torch.dtype:
    """Turn a --dtype value into a torch dtype.

    ``auto`` is fp32 on a CPU and the model family's ``preferred`` dtype on a GPU (fp16 for
    SVD; bf16 for Wan and LTX, trained in bf16, where the GPU has it, else fp16).
    """
    import torch

    if name == "auto":
        if device.type == "cpu":
            return torch.float32
        if preferred == "bf16" and device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if name == "fp16" and device.type == "cpu":
        note("fp16 is not supported on CPU; using fp32 instead")
        return torch.float32
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def resolve_offload(name: str, device: torch.device, components: Sequence[str], weights: dict[str, int] | None = None,
                    note: Note = _silent) -> str:
    """Turn a --offload value into none, model, group or sequential.

    ``auto`` on a CUDA device with a denoiser to load picks by the ``weights`` (bytes per
    component, as loaded) and the device's free memory (``auto_offload``) and notes what it
    picked; without ``weights`` (no model named) it answers ``by model size``.
    """
    if device.type == "cpu":
        if name in ("model", "group", "sequential"):
            raise UsageError(f"--offload {name} moves weights between a GPU and the CPU; it needs --device cuda")
        return "none"
    if name != "auto":
        return name
    if device.type == "cuda" and any(denoiser in components for denoiser in DENOISERS):
        if weights is None:
            return "by model size"
        choice, reason = auto_offload(weights, free_memory(device) or 0)  # always known on CUDA
        note(f"--offload auto: {choice} ({reason} on {device})")
        return choice
    return "none"


def auto_offload(weights: dict[str, int], free: int, reserve: int = AUTO_OFFLOAD_RESERVE_BYTES) -> tuple[str, str]:
    """What --offload auto picks, and why in words: ``none`` when every weight fits in ``free``
    bytes with ``reserve`` to spare, ``model`` (one component on the GPU at a time) when the
    largest one does, else ``group`` (the denoiser's blocks streamed in turn)."""
    total = sum(weights.values())
    largest = max(weights, key=weights.__getitem__) if weights else "nothing"
    size = weights.get(largest, 0)
    facts = (f"the weights take {_gib(total)}, the largest component ({largest}) {_gib(size)}, with "
             f"{_gib(reserve)} kept for activations; {_gib(free)} free")
    if total + reserve <= free:
        return "none", facts
    if size + reserve <= free:
        return "model", facts
    return "group", facts


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"


def weight_bytes(folder: Path, components: Sequence[str], dtype: torch.dtype, fp8: Sequence[str] = ()) -> dict[str, int]:
    """Bytes each component's weights take once loaded in ``dtype`` (the components in ``fp8``:
    one byte per weight), from the safetensors headers alone (no weights read)."""
    import math

    from safetensors import safe_open

    size = dtype.itemsize
    sizes: dict[str, int] = {}
    for name in components:
        files = sorted((folder / name).glob("*.safetensors")) if name not in WEIGHTLESS else []
        plain = [file for file in files if ".fp16." not in file.name] or files
        total = 0
        for file in plain:
            with safe_open(file, "pt") as weights:  # the header: names, dtypes and shapes
                for key in weights.keys():
                    tensor = weights.get_slice(key)
                    count, stored = math.prod(tensor.get_shape()), tensor.get_dtype()
                    floating = stored.startswith(("F", "BF"))
                    total += count * ((1 if name in fp8 else size) if floating else _DTYPE_BYTES.get(stored, 4))
        if total:
            sizes[name] = total
    return sizes


def model_folder(model: str, components: Sequence[str], *, fp16: bool = False) -> Path:
    """Find (or download once) the diffusers folder that ``model`` names.

    Args:
        model: alias, hub id, local folder or a tiny random model's name.
        components: the components whose weights must be present (none: configs only).
        fp16: prefer the fp16 weight variant when downloading.
    """
    if model in TINY_MODELS:
        return tiny_random_path(model)
    model = ALIASES.get(model, model)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"--model {model}: the folder has no model_index.json; expected a diffusers model folder")
        return path
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelError(
            f"--model {model}: no such model folder; give a diffusers folder, a hub id such as {DEFAULT_MODEL}, "
            f"an alias ({', '.join(ALIASES)}) or a tiny random model ({', '.join(TINY_MODELS)})"
        )
    return _hub_snapshot(model, components, fp16=fp16)


def _hub_snapshot(repo_id: str, components: Sequence[str], *, fp16: bool) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    weights = [f"{name}/*{'.fp16' if fp16 else ''}.safetensors" for name in components if name not in WEIGHTLESS]
    # Configs are small: all of them come along so that any command can read any config.
    patterns = ["model_index.json", "*/*.json", "*/*.txt", *weights]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, FileNotFoundError):
        pass
    known = families.known_spec(repo_id)
    tiny = families.tiny_model_like(known[1] if known is not None else None)
    how = ("connect to the internet once to download it, pass --model PATH to a diffusers folder, "
           f"or try vidlatent offline with --model {tiny} (a tiny random model of its kind: its output is noise)")
    if constants.HF_HUB_OFFLINE:
        raise ModelError(f"model {repo_id} is not on disk and HF_HUB_OFFLINE is set; {how}")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except (HfHubHTTPError, OSError, LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(f"model {repo_id} is not on disk and cannot be downloaded ({reason}); {how}") from error


def _variant(folder: Path, components: Sequence[str], dtype: torch.dtype) -> str | None:
    """``fp16`` when loading in fp16 and every weighted component in the folder has fp16 files."""
    import torch

    if dtype != torch.float16:
        return None
    weighted = [name for name in components if name not in WEIGHTLESS and (folder / name).is_dir()]
    has_fp16 = all(any((folder / name).glob("*.fp16.safetensors")) for name in weighted)
    return "fp16" if has_fp16 else None


def _placement(options: LoadOptions, components: Sequence[str], note: Note, family: Family) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of ``options`` (validated by the caller); an --offload the device cannot take is refused."""
    device = resolve_device(options.device, note)
    dtype = resolve_dtype(options.dtype, device, note, preferred=family.preferred_gpu_dtype)
    resolve_offload("none" if options.offload == "auto" else options.offload, device, components)  # refuse early
    return device, dtype


def _model_id(model: str, folder: Path) -> str:
    # Recorded in latent files: a hub id stays a hub id, a folder becomes an absolute path.
    model = ALIASES.get(model, model)
    return str(folder.resolve()) if Path(model).expanduser().is_dir() else model


def describe(options: LoadOptions | str) -> ModelInfo:
    """The family and spec of a --model, from its configs only (a hub model's configs are
    downloaded, not its weights), so that arguments can be checked before anything loads."""
    model = options if isinstance(options, str) else options.model
    try:
        folder = model_folder(model, ())
    except ModelError:
        # A checkpoint a family knows by hub id is described without its folder, so that usage
        # mistakes are reported before "not on disk"; loading it still needs the folder.
        hub_id = ALIASES.get(model, model)
        known = families.known_spec(hub_id)
        if known is None:
            raise
        return ModelInfo(model_id=hub_id, folder=None, family=known[0].for_model(hub_id, None), spec=known[1])
    family, index = families.for_folder(folder, model)
    model_id = _model_id(model, folder)
    family = family.for_model(model_id, folder)
    return ModelInfo(model_id=model_id, folder=folder, family=family, spec=family.spec(folder, index, model_id))


def describe_checked(options: LoadOptions) -> ModelInfo:
    """``describe``, and the acceleration flags the family cannot take refused (--cache on SVD, ...):
    everything about the model that can be checked before loading, done once. Commands call it
    before they load, and hand the result to ``load_vae`` or ``load_pipeline``."""
    options.validate()
    info = describe(options)
    check_fits(options.acceleration, info.family, info.spec, device=options.device, model_id=info.model_id,
               folder=info.folder)
    check_component_files(options.components, info.family, info.spec, info.folder)
    return info


def load_vae(options: LoadOptions, note: Note = _silent, *, info: ModelInfo | None = None, sound: bool = False) -> LoadedModel:
    """Load only the VAE of ``options.model`` (for encode and decode); ``info``: its
    ``describe_checked``, where the caller has it; ``sound``: the sound's decoder too, where the
    family makes sound (``Family.sound``: LTX-2's audio VAE and vocoder)."""
    info = info or describe_checked(options)
    device, dtype = _placement(options, ("vae",), note, info.family)
    sound_components = info.family.sound.components if sound and info.family.sound is not None else ()
    folder = model_folder(options.model, ("vae", *sound_components), fp16=dtype == _fp16())
    quiet_libraries()
    import diffusers

    vae_class = getattr(diffusers, info.family.vae_class)
    vae = load_component(
        lambda: vae_class.from_pretrained(
            folder, subfolder="vae", torch_dtype=dtype, variant=_variant(folder, ("vae",), dtype), use_safetensors=True
        ),
        options.model,
    )
    space = latent_space_of(vae)
    vae.to(device)
    vae.eval()
    if options.acceleration.vae_tiling:
        vae.enable_tiling()
    decoders = {name: load_component(lambda name=name: _folder_component(folder, name, dtype, options.model), options.model).to(device).eval()
                for name in sound_components}
    return LoadedModel(
        model_id=info.model_id, folder=folder, device=device, dtype=dtype, offload="none", vae=vae, latent_space=space,
        family=info.family, spec=info.spec, layout=info.family.layout(vae), components=("vae", *sound_components),
        accelerated=Applied(acceleration=options.acceleration, note=note), sound=decoders or None,
    )


def _folder_component(folder: Path, name: str, dtype: Any, model: str) -> Any:
    """One component of a diffusers folder, of the class its model_index.json names (a diffusers
    class, or one of a pipeline module's own: ``["ltx2", "LTX2Vocoder"]``), as diffusers loads it."""
    import importlib

    import diffusers

    entry = families.read_model_index(folder, model).get(name)
    if not isinstance(entry, list) or len(entry) != 2 or not all(isinstance(part, str) for part in entry):
        raise ModelError(f"--model {model}: model_index.json names no {name} component")
    library, class_name = entry
    module = diffusers if library == "diffusers" else importlib.import_module(f"diffusers.pipelines.{library}")
    component_class = getattr(module, class_name, None)
    if component_class is None:
        raise ModelError(f"--model {model}: its {name} is a {library}.{class_name}, which diffusers {diffusers.__version__} lacks")
    return component_class.from_pretrained(folder, subfolder=name, torch_dtype=dtype, use_safetensors=True)


def load_pipeline(options: LoadOptions, components: Sequence[str] | None = None, note: Note = _silent, *,
                  image: bool = True, last_image: bool = False, info: ModelInfo | None = None) -> LoadedModel:
    """Load the family's pipeline for ``options.model`` with only ``components`` (the rest are None).

    Args:
        options: model, device, dtype, offload, acceleration.
        components: the components to load; None for what sampling needs.
        note: called with one-line notes (fp16 on a CPU, what --offload auto picked, ...).
        image: the pipeline class for sampling with a conditioning image (else text only).
        last_image: the one for sampling with a last frame too (keyframes; LTX-2 has its own).
        info: the model's ``describe_checked``, where the caller has it (not described twice).
    """
    info = info or describe_checked(options)
    family, spec = info.family, info.spec
    acceleration = options.acceleration
    components = tuple(components) if components is not None else family.sampling_components(spec, image=image)
    device, dtype = _placement(options, components, note, family)
    quiet_libraries()
    import diffusers

    pipeline_class = getattr(diffusers, family.pipeline_class(spec, image=image, last_image=last_image))
    loras = []
    if acceleration.loras and info.folder is not None:  # before the weights load (or download): configs only
        loras = read_loras(acceleration.loras, pipeline_class, family, spec, info.folder, components,
                           partial=acceleration.lora_partial)
    files = {file.component: file for file in options.components if file.component in components}
    # The folder's own weights of a component a file replaces are not needed (nor downloaded).
    folder_components = [name for name in components if name not in files]
    folder = model_folder(options.model, folder_components, fp16=dtype == _fp16())
    if info.folder is None:
        check_component_files(tuple(files.values()), family, spec, folder)
    weights = None
    if options.offload == "auto" and device.type == "cuda":
        fp8 = DENOISERS if acceleration.quantize == "fp8" else ()
        weights = weight_bytes(folder, folder_components, dtype, fp8)
        size = dtype.itemsize
        weights |= {name: loaded_bytes(file, 1 if name in fp8 else size) for name, file in files.items()}
    offload = resolve_offload(options.offload, device, components, weights, note)
    expected = inspect.signature(pipeline_class.__init__).parameters
    skipped = {name: None for name in family.components if name not in components and name in expected}
    replaced = {name: load_component(lambda: load_component_file(file, folder, dtype), file.path, file.flag)
                for name, file in files.items()}
    pipeline = load_component(
        lambda: pipeline_class.from_pretrained(
            folder, torch_dtype=dtype, variant=_variant(folder, folder_components, dtype), use_safetensors=True,
            **skipped, **replaced,
        ),
        options.model,
    )
    space = latent_space_of(pipeline.vae) if pipeline.vae is not None else ""
    if acceleration.loras and info.folder is None:
        loras = read_loras(acceleration.loras, pipeline_class, family, spec, folder, components,
                           partial=acceleration.lora_partial)
    applied = apply_before_placement(pipeline, acceleration, dtype, load_loras(pipeline, loras, spec), note, family=family,
                                     model_id=info.model_id)
    applied.files = {name: file.path for name, file in files.items()}
    if offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
    elif offload == "group":
        # The VAE stays whole on the device: the families' streamed codecs call its encoder and
        # decoder directly, past the hooks that would bring its weights in.
        import torch

        pipeline.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
                                      num_blocks_per_group=1, use_stream=device.type == "cuda", exclude_modules=["vae"])
    elif offload == "sequential":
        pipeline.enable_sequential_cpu_offload(device=device)
    elif device.type != "cpu":
        # from_pretrained loads onto the CPU: moving there again walks every module for nothing
        # (a twentieth of a small model's load).
        pipeline.to(device)
    apply_compile(pipeline, applied, family, device, offload, note)
    if acceleration.vae_tiling and pipeline.vae is not None:
        pipeline.vae.enable_tiling()
    pipeline.set_progress_bar_config(disable=True)
    return LoadedModel(
        model_id=info.model_id, folder=folder, device=device, dtype=dtype, offload=offload, vae=pipeline.vae,
        latent_space=space, family=family, spec=spec, layout=family.layout(pipeline.vae) if pipeline.vae is not None else None,
        pipeline=pipeline, components=components, accelerated=applied,
    )


def plan_vae_tiling(model: LoadedModel, size: tuple[int, int]) -> bool:
    """Whether ``model``'s VAE decodes ``size`` (width, height) tiled: as --vae-tiling says, and
    without it (auto) on where the family tiles such frames anyway (LTX: over its 512 px tile) or
    where its estimate of the decode's working memory exceeds the memory free on the device (the
    loader's note says so). Returns whether tiling is on."""
    vae, family, note = model.vae, model.family, model.accelerated.note
    if vae is None or not family.vae_tiling:
        return False
    choice = model.accelerated.acceleration.vae_tiling
    if choice is False:
        vae.disable_tiling()
    elif choice is None and not getattr(vae, "use_tiling", False):
        if family.tiles_by_default(vae, size):
            vae.enable_tiling()
        else:
            need = family.decode_working_bytes(vae, size)
            free = free_memory(model.execution_device)
            if need is not None and free is not None and need > free:
                vae.enable_tiling()
                note(f"decoding {size[0]}x{size[1]} needs about {_gib(need)}, more than the {_gib(free)} free on "
                     f"{model.execution_device}: VAE tiling is on (--no-vae-tiling turns it off)")
    return bool(getattr(vae, "use_tiling", False))


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (CUDA: the driver's count; CPU: available RAM); None if unknown."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    return None


def _fp16() -> torch.dtype:
    import torch

    return torch.float16


def load_component(load: Callable[[], Any], model: str, flag: str = "--model") -> Any:
    import warnings

    try:
        with warnings.catch_warnings():
            # diffusers renames torch_dtype to dtype; the old name works across the versions we support.
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return load()
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        what = ("vidlatent loads diffusers folders with safetensors weights" if flag == "--model"
                else "vidlatent loads single safetensors files in the original, ComfyUI or diffusers layout")
        raise ModelError(f"{flag} {model}: cannot be loaded ({reason}); {what}") from error


def latent_space_of(vae: Any) -> str:
    """The LatentSpace string of a VAE: class, latent channels, scaling factor and fingerprint.

    The fingerprint is four fixed random projections of the VAE's output convolutions (its
    family says which), normalised by their norm, so each number is of order one and barely
    moves between the fp32, fp16 and bf16 copies of one VAE (well inside the 0.05 tolerance),
    while two different VAEs disagree by order one.
    """
    import torch

    from vidlatent.latentfile import LatentSpace

    family = families.for_vae(vae)
    if family is None:
        raise ModelError(f"{type(vae).__name__} is the VAE of no vidlatent model family")
    modules = [vae.get_submodule(name) for name in family.fingerprint_modules]
    weights = torch.cat([module.weight.detach().flatten() for module in modules]).to("cpu", torch.float64)
    generator = torch.Generator().manual_seed(20231121)
    projections = torch.randn(4, weights.numel(), generator=generator, dtype=torch.float64)
    fingerprint = projections @ (weights / weights.norm())
    layout = family.layout(vae)
    space = LatentSpace(
        vae=type(vae).__name__,
        channels=int(getattr(vae.config, "latent_channels", None) or vae.config.z_dim),
        scaling_factor=layout.normalization.factor,
        fingerprint=tuple(round(float(value), 4) for value in fingerprint),
    )
    return str(space)
