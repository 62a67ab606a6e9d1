"""analyze: the pure math on synthetic tensors, then the command on clips encoded by tiny-random."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import data_file
from vidlatent import analysis, latentfile
from vidlatent.analysis import (
    Components, IncrementalPCA, RunningMoments, analyze, fit_pca, load_components, measure_motion, motion_energy,
    pca_shift, save_components,
)
from vidlatent.cli import main
from vidlatent.errors import IncompatibleLatentsError, LatentFileError, UsageError
from vidlatent.families.svd import LAYOUT as SVD_LAYOUT

SPACE = "AutoencoderKLTemporalDecoder/c4/s0.18215/fp:+1.0000,-1.0000,+0.5000,-0.5000"
OTHER_SPACE = "AutoencoderKLTemporalDecoder/c4/s0.18215/fp:+0.1000,+0.2000,+0.3000,+0.4000"


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def structured_rows(frames: int = 240, features: int = 64, seed: int = 0) -> torch.Tensor:
    """(N, D) rows with a clear spectrum: 6 latent factors of decreasing scale, noise, and
    features of very different means and scales (so standardisation matters)."""
    g = generator(seed)
    factors = torch.randn(frames, 6, generator=g, dtype=torch.float64) * torch.tensor([10, 6, 4, 3, 2, 1.5], dtype=torch.float64)
    rows = factors @ torch.randn(6, features, generator=g, dtype=torch.float64)
    rows += 0.3 * torch.randn(frames, features, generator=g, dtype=torch.float64)
    return rows * (0.1 + 3 * torch.rand(features, generator=g, dtype=torch.float64)) + 5 * torch.randn(features, generator=g, dtype=torch.float64)


def full_pca(rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: components (k, D) and explained variance ratios (k,) from one full SVD."""
    standardised = (rows - rows.mean(0)) / rows.std(0)
    _, singular, basis = torch.linalg.svd(standardised, full_matrices=False)
    return basis[:k], (singular**2 / (singular**2).sum())[:k]


def projector(basis: torch.Tensor) -> torch.Tensor:
    return basis.T @ basis  # (D, D): the same for any orthonormal basis of one subspace


def random_walk_clip(frames: int = 12, shape: tuple[int, int, int] = (4, 6, 8), step: float = 0.5, seed: int = 0) -> torch.Tensor:
    g = generator(seed)
    return torch.randn(1, *shape, generator=g) + step * torch.randn(frames, *shape, generator=g).cumsum(0)  # (F, C, h, w)


# --- motion ----------------------------------------------------------------------------------

def test_motion_energy_is_the_rms_of_each_temporal_difference():
    clip = torch.zeros(3, 4, 2, 2)
    clip[1] += 2.0  # every value moves by 2, then back
    energy = motion_energy(clip)
    assert energy.tolist() == pytest.approx([2.0, 2.0])
    assert motion_energy(clip[:1]).numel() == 0


def test_a_static_clip_is_flagged_static_and_a_moving_one_is_not():
    g = generator(1)
    frame = torch.randn(1, 4, 8, 8, generator=g)
    static = frame.repeat(16, 1, 1, 1) + 1e-3 * torch.randn(16, 4, 8, 8, generator=g)  # compression-like noise
    moving = random_walk_clip(16, (4, 8, 8))
    assert measure_motion(static).static and measure_motion(static).relative < 0.01
    assert not measure_motion(moving).static and measure_motion(moving).relative > 0.2
    # Relative to the clip's own scale: neither the scaling factor nor an offset changes the flag.
    assert measure_motion(static * 100 + 3).relative == pytest.approx(measure_motion(static).relative, rel=1e-6)
    # Unrelated frames (independent draws) measure about 1.
    assert measure_motion(torch.randn(64, 4, 16, 16, generator=g)).relative == pytest.approx(1.0, abs=0.05)
    assert measure_motion(frame).static  # one frame: no motion at all


def test_the_command_default_threshold_is_the_library_one():
    from vidlatent.commands import analyze as command

    assert command.STATIC_THRESHOLD == analysis.STATIC_THRESHOLD


# --- PCA -------------------------------------------------------------------------------------

def test_running_moments_equal_torch_over_everything():
    rows = structured_rows()
    moments = RunningMoments()
    for batch in rows.split(17):
        moments.update(batch)
    assert moments.count == rows.shape[0]
    assert torch.allclose(moments.mean, rows.mean(0), atol=1e-10)
    assert torch.allclose(moments.std(), rows.std(0), atol=1e-10)


@pytest.mark.parametrize("chunk, batch", [(16, 37), (7, 5), (500, 240)])
def test_incremental_pca_equals_a_full_svd(chunk, batch):
    rows = structured_rows()
    pca = fit_pca(lambda: iter(rows.split(batch)), 4, chunk=chunk)
    basis, ratio = full_pca(rows, 4)
    assert torch.allclose(pca.explained_variance_ratio, ratio, atol=1e-6)
    assert float((projector(pca.components) - projector(basis)).norm()) < 1e-4
    assert torch.allclose(pca.components @ pca.components.T, torch.eye(4, dtype=torch.float64), atol=1e-10)
    # Same directions one by one, up to the sign that SVD leaves free.
    assert torch.allclose((pca.components * basis).sum(1).abs(), torch.ones(4, dtype=torch.float64), atol=1e-6)


def test_incremental_pca_is_exact_when_nothing_is_truncated():
    rows = structured_rows(frames=50, features=12)
    pca = fit_pca(lambda: iter(rows.split(9)), 11, chunk=5, oversample=20)
    basis, ratio = full_pca(rows, 11)
    assert torch.allclose(pca.explained_variance_ratio, ratio, atol=1e-12)
    assert float((projector(pca.components) - projector(basis)).norm()) < 1e-9


def test_incremental_pca_keeps_memory_bounded_by_the_rank_and_the_chunk():
    rows = structured_rows(frames=400)
    moments = RunningMoments()
    moments.update(rows)
    pca = IncrementalPCA(3, moments.mean, analysis.safe_std(moments.std()), oversample=5)
    for chunk in rows.split(20):
        pca.partial_fit(chunk)
        assert pca._basis.shape[0] <= 8  # K + oversample rows of D, whatever the frames seen
    assert pca.result().frames == 400


def test_frames_moving_along_one_direction_give_one_component():
    g = generator(2)
    base, direction = torch.randn(4, 6, 8, generator=g), torch.randn(4, 6, 8, generator=g)
    clip = base + torch.linspace(-1, 1, 20)[:, None, None, None] * direction  # (20, 4, 6, 8)
    result = analyze([lambda: clip], 3)
    ratio = result.pca.explained_variance_ratio
    assert float(ratio[0]) > 0.999 and float(ratio[1:].sum()) < 1e-3
    # The frames advance along PC1 evenly: their coordinates are a straight line in t.
    steps = result.clips[0].coordinates[1:, 0] - result.clips[0].coordinates[:-1, 0]
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-4)  # float32 frames


def test_analyze_reads_each_clip_once_per_pass_and_checks_sizes():
    calls = {"a": 0, "b": 0}
    clips = {"a": random_walk_clip(10, seed=3), "b": random_walk_clip(7, seed=4)}

    def loader(name):
        def load():
            calls[name] += 1
            return clips[name]
        return load

    result = analyze([loader("a"), loader("b")], None)
    assert calls == {"a": 3, "b": 3}
    assert [clip.frames for clip in result.clips] == [10, 7]
    assert result.pca.components.shape == (8, 4 * 6 * 8)  # the default K
    assert [tuple(clip.coordinates.shape) for clip in result.clips] == [(10, 8), (7, 8)]
    assert analyze([lambda: clips["a"][:4]], None).pca.components.shape[0] == 3  # default lowered to frames - 1
    with pytest.raises(UsageError, match="more components than 17 frames"):
        analyze([loader("a"), loader("b")], 17)
    with pytest.raises(IncompatibleLatentsError, match="4x6x8 and 4x6x6"):
        analyze([loader("a"), lambda: clips["b"][..., :6]], 2)
    with pytest.raises(UsageError, match="at least 2 frames"):
        analyze([lambda: clips["a"][:1]], None)


# --- components: shift and file ----------------------------------------------------------------

@pytest.fixture
def fitted() -> tuple[torch.Tensor, Components]:
    clip = random_walk_clip(16, seed=5)
    result = analyze([lambda: clip], 4)
    return clip, Components.from_pca(result.pca, result.frame_shape, SPACE, ["walk"])


def test_pca_shift_moves_the_coordinate_on_that_component_by_the_amount(fitted):
    clip, components = fitted
    before = components.project(clip)  # (F, K)
    shifted = pca_shift(clip, components, 1, 2.5)
    after = components.project(shifted)
    assert shifted.shape == clip.shape and shifted.dtype == clip.dtype
    assert torch.allclose(after[:, 1] - before[:, 1], torch.full((16,), 2.5, dtype=torch.float64), atol=1e-4)
    for other in (0, 2, 3):
        assert torch.allclose(after[:, other], before[:, other], atol=1e-4)
    assert torch.equal(pca_shift(clip, components, 0, 0.0), clip)


def test_pca_shift_refusals(fitted):
    clip, components = fitted
    with pytest.raises(UsageError, match="out of range"):
        pca_shift(clip, components, 4, 1.0)
    with pytest.raises(IncompatibleLatentsError, match="4x6x6"):
        pca_shift(clip[..., :6], components, 0, 1.0)
    with pytest.raises(IncompatibleLatentsError, match="latent space"):
        components.check_clip(clip, OTHER_SPACE)


def test_components_file_round_trip(tmp_path, fitted):
    _, components = fitted
    path = tmp_path / "pcs.safetensors"
    save_components(components, path)
    loaded = load_components(path)
    assert loaded.components.shape == (4, 4, 6, 8) and loaded.mean.shape == loaded.std.shape == (4, 6, 8)
    for name in analysis.COMPONENT_TENSORS:
        assert torch.equal(getattr(loaded, name), getattr(components, name))
    assert (loaded.latent_space, loaded.frames, loaded.clips) == (SPACE, 16, ("walk",))
    assert analysis.components_to_bytes(loaded) == path.read_bytes()  # byte-stable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pcs.safetensors"]  # no temporary left


def _components_file(path, components, tensors=None, **metadata):
    from safetensors.torch import save_file

    base = {name: getattr(components, name).contiguous() for name in analysis.COMPONENT_TENSORS}
    base.update(tensors or {})
    meta = {"format": "vidlatent.components", "format_version": "1", "latent_space": SPACE, **metadata}
    save_file({k: v for k, v in base.items() if v is not None}, str(path), metadata=meta)


@pytest.mark.parametrize("fault, message", [
    ("absent", "no such file"),
    ("garbage", "not a readable safetensors file"),
    ("latent file", "not a components file"),
    ("version", "version '2' is not supported"),
    ("missing std", "lacks std"),
    ("bad mean", "mean has shape"),
    ("nan", "finite"),
    ("zero std", "std must be positive"),
    ("bad space", "latent_space"),
])
def test_load_components_refuses_bad_files(tmp_path, fitted, fault, message):
    clip, components = fitted
    path = tmp_path / "p.safetensors"
    if fault == "garbage":
        path.write_bytes(b"not safetensors at all")
    elif fault == "latent file":
        latentfile.write(latentfile.LatentClip(clip, "m", SPACE, 7.0, 48, 64, layout=SVD_LAYOUT), path)
    elif fault == "version":
        _components_file(path, components, format_version="2")
    elif fault == "missing std":
        _components_file(path, components, {"std": None})
    elif fault == "bad mean":
        _components_file(path, components, {"mean": torch.zeros(4, 6, 7)})
    elif fault == "nan":
        _components_file(path, components, {"explained_variance": torch.full((4,), float("nan"))})
    elif fault == "zero std":
        _components_file(path, components, {"std": torch.zeros(4, 6, 8)})
    elif fault == "bad space":
        _components_file(path, components, latent_space="nonsense")
    with pytest.raises(LatentFileError, match=message):
        load_components(path)


# --- the command -----------------------------------------------------------------------------

def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, tiny_model):
    """bear.gif and test_video1.mp4 encoded by tiny-random: two clips of one latent space."""
    folder = tmp_path_factory.mktemp("analyze")
    paths = {}
    for name, source in (("bear", "bear.gif"), ("video1", "test_video1.mp4")):
        paths[name] = folder / f"{name}.safetensors"
        result = run("encode", str(data_file(source)), "--model", "tiny-random", "-o", str(paths[name]), "-q")
        assert result.exit_code == 0, result.output
    return paths


def test_analyze_prints_a_table(encoded):
    result = run("analyze", str(encoded["bear"]), str(encoded["video1"]), "--pca", "3")
    assert result.exit_code == 0, result.output
    for text in ("bear", "video1", "mean motion energy", "PC1", "PC3", "explained variance ratio", "latent_space"):
        assert text in result.stdout
    assert "PC4" not in result.stdout
    assert result.stderr == ""


def test_analyze_json(encoded):
    result = run("analyze", str(encoded["bear"]), str(encoded["video1"]), "--pca", "3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["command"] == "analyze" and summary["outputs"] == []
    assert summary["frame_shape"] == [4, 8, 8] and summary["static_threshold"] == 0.05
    components = summary["components"]
    ratios = components["explained_variance_ratio"]
    assert components["count"] == 3 and components["latent_frames"] == 42 and components["features"] == 256
    assert ratios == sorted(ratios, reverse=True) and 0 < sum(ratios) <= 1
    assert [clip["name"] for clip in summary["clips"]] == ["bear", "video1"]
    for clip in summary["clips"]:
        assert clip["frames"] == 21 and clip["model"] == "tiny-random"
        assert len(clip["motion_energy"]) == 20
        assert len(clip["coordinates"]) == 21 and all(len(row) == 3 for row in clip["coordinates"])
        assert clip["static"] is False  # real videos move
        assert clip["mean_motion_energy"] == pytest.approx(sum(clip["motion_energy"]) / 20, rel=1e-4)


def test_analyze_flags_a_still_clip_static(tmp_path, encoded):
    bear = latentfile.read(encoded["bear"])
    still = tmp_path / "still.safetensors"
    latentfile.write(dataclasses.replace(bear, latents=bear.latents[:1].repeat(8, 1, 1, 1)), still)
    summary = json.loads(run("analyze", str(encoded["bear"]), str(still), "--json").stdout)
    assert [clip["static"] for clip in summary["clips"]] == [False, True]
    assert summary["clips"][1]["mean_motion_energy"] == 0.0


def test_analyze_through_a_pipe_loads_no_model(tmp_path, encoded, vidlatent_cmd):
    encode = subprocess.Popen([*vidlatent_cmd, "encode", str(data_file("bear.gif")), "--model", "tiny-random",
                               "--frames", "6", "-o", "-", "-q"], stdout=subprocess.PIPE)
    code = ("import sys; from vidlatent.cli import main\n"
            "try: main(['analyze', '-', '--json'], prog_name='vidlatent')\n"
            "except SystemExit as exit: assert not exit.code, exit.code\n"
            "heavy = [m for m in ('diffusers', 'transformers') if m in sys.modules]\n"
            "assert not heavy, heavy")
    analyze_run = subprocess.run([sys.executable, "-c", code], stdin=encode.stdout, capture_output=True)
    encode.stdout.close()
    assert encode.wait() == 0
    assert analyze_run.returncode == 0, analyze_run.stderr.decode()
    summary = json.loads(analyze_run.stdout)
    assert summary["clips"][0]["path"] == "-" and summary["clips"][0]["frames"] == 6
    assert summary["components"]["count"] == 5  # 8 asked by default, 6 frames allow 5


def test_help_imports_no_torch():
    code = ("import sys; from vidlatent.cli import main\n"
            "try: main(['analyze', '--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'diffusers', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_save_components_for_pca_shift(tmp_path, encoded):
    out = tmp_path / "pcs.safetensors"
    result = run("analyze", str(encoded["bear"]), str(encoded["video1"]), "--pca", "2", "--save-components", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["outputs"] == [{"path": str(out), "kind": "components"}]
    components = load_components(out)
    bear = latentfile.read(encoded["bear"])
    assert components.latent_space == bear.latent_space and components.clips == ("bear", "video1")
    assert components.explained_variance_ratio.tolist() == pytest.approx(summary["components"]["explained_variance_ratio"], rel=1e-4)
    coordinates = components.project(bear.latents)
    assert torch.allclose(coordinates, torch.tensor(summary["clips"][0]["coordinates"], dtype=torch.float64), rtol=1e-4, atol=1e-4)
    shifted = components.project(pca_shift(bear.latents, components, 0, -3.0))
    assert torch.allclose(shifted[:, 0] - coordinates[:, 0], torch.full((21,), -3.0, dtype=torch.float64), atol=1e-3)


def test_edit_pca_shift_moves_the_clip_along_a_component(tmp_path, encoded):
    pcs = tmp_path / "pcs.safetensors"
    assert run("analyze", str(encoded["bear"]), str(encoded["video1"]), "--pca", "3", "--save-components", str(pcs)).exit_code == 0
    shifted = tmp_path / "shifted.safetensors"
    result = run("edit", str(encoded["bear"]), "--pca-shift", "2:1.5", "--components", str(pcs), "-o", str(shifted), "-q")
    assert result.exit_code == 0, result.output
    components = load_components(pcs)
    before = components.project(latentfile.read(encoded["bear"]).latents)
    after_clip = latentfile.read(shifted)
    after = components.project(after_clip.latents)
    moved = after - before  # (F, K): PC2 by 1.5 everywhere, the others not at all
    assert torch.allclose(moved[:, 1], torch.full((21,), 1.5, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(moved[:, [0, 2]], torch.zeros(21, 2, dtype=torch.float64), atol=1e-3)
    assert after_clip.history[-1]["arguments"]["operations"][0] | {"source": ""} == {
        "operation": "pca_shift", "component": 2, "amount": 1.5, "source": ""}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pca-shift", "1:2"], "go together"),
        (["--pca-shift", "4:2", "--components", "{pcs}"], "components 1 to 3"),
        (["--pca-shift", "one", "--components", "{pcs}"], "COMPONENT:AMOUNT"),
    ],
)
def test_edit_pca_shift_refusals(tmp_path, encoded, args, message):
    pcs = tmp_path / "pcs.safetensors"
    assert run("analyze", str(encoded["bear"]), "--pca", "3", "--save-components", str(pcs)).exit_code == 0
    result = run("edit", str(encoded["bear"]), *[a.format(pcs=pcs) for a in args], "-o", str(tmp_path / "o.safetensors"))
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed (pip install 'vidlatent[plot]')")
def test_plot_writes_a_png(tmp_path, encoded):
    from PIL import Image

    out = tmp_path / "structure.png"
    result = run("analyze", str(encoded["bear"]), str(encoded["video1"]), "--plot", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outputs"] == [{"path": str(out), "kind": "plot"}]
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 1000 and image.height > 400
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 24)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours  # tab10's first two: one per clip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["structure.png"]  # written atomically


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None or importlib.util.find_spec("umap") is None,
                    reason="matplotlib or umap-learn is not installed (pip install 'vidlatent[plot,umap]')")
def test_plot_with_umap(tmp_path, encoded):
    out = tmp_path / "umap.png"
    result = run("analyze", str(encoded["bear"]), str(encoded["video1"]), "--plot", str(out), "--umap", "-q")
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_missing_plot_library_is_one_clear_line(tmp_path, encoded, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importlib.util.find_spec now says: not installed
    result = run("analyze", str(encoded["bear"]), "--plot", str(tmp_path / "p.png"))
    assert result.exit_code == 1
    assert result.stderr == "vidlatent: error: --plot needs matplotlib, which is not installed; pip install 'vidlatent[plot]'\n"
    assert list(tmp_path.iterdir()) == []


def test_missing_umap_is_one_clear_line(tmp_path, encoded, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    result = run("analyze", str(encoded["bear"]), "--plot", str(tmp_path / "p.png"), "--umap")
    assert result.exit_code == 1
    assert "--umap needs umap-learn, which is not installed; pip install 'vidlatent[umap]'" in result.stderr
    assert list(tmp_path.iterdir()) == []


# Every refusal: exit 2, one line on stderr, nothing on stdout, nothing written.
@pytest.mark.parametrize("args, message", [
    (["{bear}", "{other_space}"], "bear.safetensors and {tmp}/other_space.safetensors belong to different latent spaces"),
    (["{bear}", "{wide}"], "bear.safetensors has frames of shape 4x8x8 but {tmp}/wide.safetensors 4x8x16"),
    (["{bear}", "{direction}"], "is a direction, not a clip"),
    (["{bear}", "--pca", "40"], "--pca 40 asks for more components than 21 frames give"),
    (["{bear}", "--umap"], "--umap draws into the --plot image"),
    (["{bear}", "--plot", "{tmp}/p.jpg"], "--plot {tmp}/p.jpg: expected a file name ending in .png"),
    (["{bear}", "--plot", "-"], "expected a file name ending in .png"),
    (["{bear}", "--save-components", "{tmp}/p.pt"], "ending in .safetensors"),
    (["{bear}", "--save-components", "{bear}"], "is the input"),
    (["-", "-"], "given more than once"),
    (["{tmp}/absent.safetensors"], "no such file"),
    (["{notlatent}"], "not a readable safetensors file"),
    (["{video}"], "is a video; analyze is model-free"),
    (["{single}"], "at least 2 frames"),
])
def test_refusals(tmp_path, encoded, args, message):
    bear = latentfile.read(encoded["bear"])
    files = {
        "other_space": dataclasses.replace(bear, latent_space=OTHER_SPACE),
        "wide": dataclasses.replace(bear, latents=torch.zeros(3, 4, 8, 16), width=128),
        "direction": dataclasses.replace(bear, kind="direction"),
        "single": dataclasses.replace(bear, latents=bear.latents[:1]),
    }
    for name, clip in files.items():
        latentfile.write(clip, tmp_path / f"{name}.safetensors")
    notlatent = tmp_path / "n.safetensors"
    notlatent.write_text("hello, this is not a latent file")
    names = {"tmp": tmp_path, "bear": encoded["bear"], "notlatent": notlatent, "video": data_file("test_video1.mp4"),
             **{name: tmp_path / f"{name}.safetensors" for name in files}}
    before = sorted(tmp_path.iterdir())
    result = run("analyze", *(arg.format(**names) for arg in args), input=b"")
    assert result.exit_code == 2, result.output
    assert message.format(**names) in result.stderr
    assert result.stderr.startswith("vidlatent: error: ") and result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("option", [["--pca", "0"], ["--static-threshold", "0"]])
def test_out_of_range_numbers_are_usage_errors(encoded, option):
    result = run("analyze", str(encoded["bear"]), *option)
    assert result.exit_code == 2 and result.stderr.startswith(f"vidlatent: error: invalid value for '{option[0]}': 0")
    assert result.stderr.endswith("; see vidlatent analyze --help\n") and result.stderr.count("\n") == 1


def test_unwritable_plot_folder_is_a_runtime_failure(tmp_path, encoded):
    (tmp_path / "a-file").write_text("not a folder")
    result = run("analyze", str(encoded["bear"]), "--save-components", str(tmp_path / "a-file" / "p.safetensors"))
    assert result.exit_code == 1
    assert result.stderr.startswith("vidlatent: error: cannot write") and "its folder cannot be made" in result.stderr


# --- analyze --seams ------------------------------------------------------------------------------


def _extended_clip() -> latentfile.LatentClip:
    """A 9-frame SVD-layout clip that a history says was made as 5 frames extended by 2 + 2, with a
    jump into frame 7 (the second join) and a brighter last segment."""
    generator = torch.Generator().manual_seed(0)
    steps = torch.randn(9, 4, 6, 8, generator=generator) * 0.1
    latents = steps.cumsum(0)  # a slow random walk: every step small
    latents[7:] += 2.0  # the second join jumps, and the last segment sits higher
    clip = latentfile.LatentClip(latents, "m", SPACE, 7.0, 48, 64, seed=1, layout=SVD_LAYOUT)
    clip = clip.with_step("generate", {"frames": 5, "seed": 1})
    return clip.with_step("extend", {"times": 2, "segments": [{"seed": 2, "frames": 2, "prompt": "a"},
                                                              {"seed": 3, "frames": 2, "prompt": "b"}]})


def test_seams_are_the_joins_the_history_records_worst_first(tmp_path):
    clip = _extended_clip()
    joins = analysis.history_joins(clip.history, clip.frames, clip.layout.frame_rule)
    assert [(join.latent_frame, join.prompt) for join in joins] == [(5, "a"), (7, "b")]
    measured = analysis.measure_seams(clip.latents, joins)
    assert [seam.join.latent_frame for seam in measured.seams] == [7, 5]  # the jump first
    assert measured.seams[0].ratio > 10 and measured.seams[1].ratio < 3
    assert [(segment.first, segment.end) for segment in measured.segments] == [(0, 5), (5, 7), (7, 9)]
    assert measured.segments[0].mean == 0 and measured.segments[2].mean > measured.segments[1].mean


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_analyze_seams_json_and_plot(tmp_path):
    path, plot = tmp_path / "long.safetensors", tmp_path / "seams.png"
    latentfile.write(_extended_clip(), path)
    result = CliRunner().invoke(main, ["analyze", str(path), "--seams", "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    (clip,) = json.loads(result.stdout)["clips"]
    assert [(seam["latent_frame"], seam["prompt"], seam["command"]) for seam in clip["seams"]] == [(7, "b", "extend"),
                                                                                                (5, "a", "extend")]
    assert clip["seams"][0]["ratio"] > 10 and len(clip["segments"]) == 3 and plot.stat().st_size > 0
    refused = CliRunner().invoke(main, ["analyze", str(path), "--seams", "--pca", "2"])
    assert refused.exit_code == 2 and "--pca and --seams" in refused.stderr
