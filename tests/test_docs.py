"""Tests of the generated docs: man/*.1 and completions/* are current, render, and complete.

Regenerate with ``python tools/gendocs.py``.
"""

from __future__ import annotations

import importlib.util
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import click
import pytest

from vidlatent import __version__
from vidlatent.cli import COMMANDS
from vidlatent.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
BASH_SCRIPT = ROOT / "completions" / "vidlatent.bash"
VENV_BIN = Path(sys.executable).parent  # where the `vidlatent` console script lives
REGENERATE = "run python tools/gendocs.py"


def _load_gendocs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gendocs", ROOT / "tools" / "gendocs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gendocs = _load_gendocs()


def _differences(rendered: dict[str, str], folder: Path) -> list[str]:
    return [name for name, text in rendered.items()
            if not (folder / name).exists() or (folder / name).read_text() != text]


# --- up to date --------------------------------------------------------------------------

def test_man_pages_are_up_to_date() -> None:
    stale = _differences(gendocs.render_man_pages(), ROOT / "man")
    assert not stale, f"man pages out of date: {stale}; {REGENERATE}"


def test_completions_are_up_to_date() -> None:
    stale = _differences(gendocs.render_completions(), ROOT / "completions")
    assert not stale, f"completions out of date: {stale}; {REGENERATE}"


def test_check_mode_passes_on_the_tree() -> None:
    assert gendocs.stale_files() == [], REGENERATE
    assert gendocs.main(["--check"]) == 0


def test_up_to_date_check_fails_when_an_option_is_added(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proof that the tests above can fail: a new option, not regenerated, is caught."""
    encode = cli.get_command(click.Context(cli, info_name="vidlatent"), "encode")
    assert encode is not None
    extra = click.Option(["--brand-new-option"], type=int, default=3, help="Added without regenerating.")
    monkeypatch.setattr(encode, "params", [*encode.params, extra])

    rendered = gendocs.render_man_pages()
    assert "\\-\\-brand\\-new\\-option" in rendered["vidlatent-encode.1"]
    assert "vidlatent-encode.1" in _differences(rendered, ROOT / "man")
    assert ROOT / "man" / "vidlatent-encode.1" in gendocs.stale_files()
    assert gendocs.main(["--check"]) == 1


def test_generator_does_not_import_torch() -> None:
    code = ("import runpy, sys; sys.argv = ['gendocs', '--check']\n"
            "try: runpy.run_path('tools/gendocs.py', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers')]")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- content -----------------------------------------------------------------------------

def _examples(page: str) -> str:
    match = re.search(r"^\.SH EXAMPLES\n(.*?)(?=^\.SH |\Z)", page, re.S | re.M)
    assert match, "no EXAMPLES section"
    return match.group(1)


def test_every_command_has_a_page_with_examples() -> None:
    pages = gendocs.render_man_pages()
    expected = {"vidlatent.1", *(f"vidlatent-{name}.1" for name in COMMANDS)}
    assert expected <= set(pages)
    for name, page in pages.items():
        assert page.startswith(".TH "), name
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "SEE ALSO"):
            assert f"\n.SH {section}\n" in page, f"{name} lacks {section}"
        assert "vidlatent" in _examples(page), f"{name}: give the command an 'Examples:' block in its epilog"


def test_root_page_has_a_pipe_example_and_lists_commands() -> None:
    page = gendocs.render_man_pages()["vidlatent.1"]
    examples = _examples(page)
    assert any("|" in line and line.startswith("vidlatent ") for line in examples.splitlines())
    for name in COMMANDS:
        escaped = name.replace("-", "\\-")  # roff escapes every hyphen
        assert f"vidlatent\\-{escaped} (1)" in page


def test_pages_document_options_defaults_and_env_vars() -> None:
    page = gendocs.render_man_pages()["vidlatent-encode.1"]
    assert "\\fB\\-o\\fR, \\fB\\-\\-output\\fR \\fIPATH\\fR" in page
    assert "\\fB\\-\\-model\\fR \\fIID|PATH\\fR" in page
    assert "VIDLATENT_MODEL" in page and "Default: \\fBauto\\fR" in page
    assert page.splitlines()[0] == f'.TH "VIDLATENT\\-ENCODE" "1" "" "vidlatent {__version__}" "User Commands"'


def test_roff_escaping() -> None:
    assert gendocs.esc("a\\b") == "a\\eb"
    assert gendocs.esc("--x") == "\\-\\-x"
    assert gendocs.esc(".start\n'quote\nmid.dle") == "\\&.start\n\\&'quote\nmid.dle"


@pytest.mark.skipif(not (shutil.which("groff") or shutil.which("man")), reason="neither groff nor man is installed")
def test_pages_render_without_errors() -> None:
    env = {**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"}
    for page in sorted((ROOT / "man").glob("*.1")):
        if shutil.which("groff"):
            result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                                    capture_output=True, text=True, env=env, timeout=30)
            assert result.returncode == 0 and not result.stderr, f"{page.name}: {result.stderr}"
        if shutil.which("man"):
            result = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, env=env, timeout=30)
            assert result.returncode == 0 and not result.stderr.strip(), f"{page.name}: {result.stderr}"
            assert "EXAMPLES" in result.stdout and "SEE ALSO" in result.stdout


# --- bash completion, for real -------------------------------------------------------------

def _completion_function() -> str:
    match = re.search(r"complete\s.*-F\s+(\S+)\s+vidlatent\b", BASH_SCRIPT.read_text())
    assert match, "no `complete -F` line in completions/vidlatent.bash"
    return match.group(1)


def _bash_complete(line: str, cwd: Path) -> tuple[list[str], str]:
    """COMPREPLY for the command line ``line`` (cursor at its end), and what compopt was asked.

    Outside an interactive completion bash refuses `compopt`, so a stand-in records its
    arguments and, for `-o default`, does what readline would then do: complete file names.
    """
    words = line.split() + ([""] if line.endswith(" ") else [])
    script = f"""
        export PATH={shlex.quote(str(VENV_BIN))}:"$PATH"
        source {shlex.quote(str(BASH_SCRIPT))}
        compopt() {{
            local IFS=' '
            echo "compopt $*" >&2
            if [[ " $* " == *" -o default "* ]]; then COMPREPLY=($(compgen -f -- "${{COMP_WORDS[COMP_CWORD]}}")); fi
        }}
        COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
        COMP_CWORD={len(words) - 1}
        COMP_LINE={shlex.quote(line)}
        COMP_POINT={len(line)}
        COMPREPLY=()
        {_completion_function()} vidlatent "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    result = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [w for w in result.stdout.splitlines() if w], result.stderr


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


@needs_bash
def test_bash_completes_subcommands(tmp_path: Path) -> None:
    reply, _ = _bash_complete("vidlatent ", tmp_path)
    assert {"encode", "decode", "inspect"} <= set(reply)
    assert set(COMMANDS) <= set(reply)


@needs_bash
def test_bash_completes_options(tmp_path: Path) -> None:
    reply, _ = _bash_complete("vidlatent encode --mo", tmp_path)
    assert reply == ["--model"]


@needs_bash
def test_bash_completes_file_names_for_path_arguments(tmp_path: Path) -> None:
    (tmp_path / "myclip.safetensors").write_bytes(b"")
    reply, asked = _bash_complete("vidlatent decode ", tmp_path)
    assert "compopt -o default" in asked
    assert "myclip.safetensors" in reply
    reply, _ = _bash_complete("vidlatent decode my", tmp_path)
    assert reply == ["myclip.safetensors"]


@needs_bash
@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_bash_file_completion_in_an_interactive_shell(tmp_path: Path) -> None:
    """Readline itself, in a pty: TAB after `vidlatent decode my` fills in the file name."""
    (tmp_path / "myclip.safetensors").write_bytes(b"")
    master, slave = pty.openpty()
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PS1": "$ ", "TERM": "dumb", "INPUTRC": "/dev/null", "HOME": str(tmp_path)}
    shell = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave, stderr=slave,
                             cwd=tmp_path, env=env, start_new_session=True)
    os.close(slave)
    output = b""
    try:
        os.write(master, f"source {shlex.quote(str(BASH_SCRIPT))}\nvidlatent decode my\t".encode())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"decode myclip.safetensors" not in output:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    output += os.read(master, 4096)
                except OSError:
                    break
    finally:
        shell.kill()
        shell.wait()
        os.close(master)
    assert b"vidlatent decode myclip.safetensors" in output, output.decode(errors="replace")


def test_completion_does_not_import_torch() -> None:
    """Completing a subcommand's options loads its module, but never torch or diffusers."""
    env = {**os.environ, "_VIDLATENT_COMPLETE": "bash_complete", "COMP_WORDS": "vidlatent decode --", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "vidlatent"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "plain,--chunk" in result.stdout  # decode's own options: its module was loaded
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "vidlatent.commands.options" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in ("torch", "diffusers"))
    assert not heavy, f"shell completion imported {heavy[:5]}"

    # importlib.import_module (how LazyGroup loads commands) escapes -X importtime: ask sys.modules too.
    code = ("import sys\n"
            "from vidlatent.cli import main\n"
            "try: main(prog_name='vidlatent')\n"
            "except SystemExit: pass\n"
            "assert 'vidlatent.commands.decode' in sys.modules\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers')]\n"
            "assert not heavy, heavy[:5]\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "plain,--chunk" in result.stdout


# --- README against the code ------------------------------------------------------------------------


def _readme_shell_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [block.replace("\\\n", " ") for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_readme_examples_of_one_block_write_different_files() -> None:
    """Run one after another, as a new user does, no README example overwrites another's file (the
    folders of the scale-out examples are one launcher's or another's: alternatives)."""
    for block in _readme_shell_blocks():
        outputs = [name for name in re.findall(r"(?:^|\s)-o\s+(\S+)", block) if name != "-" and not name.endswith("/")]
        repeated = sorted({name for name in outputs if outputs.count(name) > 1})
        assert not repeated, f"README examples write {repeated} more than once:\n{block}"


def test_readme_and_help_name_each_familys_gpu_dtype_and_size_multiple() -> None:
    """--dtype auto and --size's multiples, as README and --help say them, are the families' declarations."""
    from vidlatent import families

    readme = " ".join((ROOT / "README.md").read_text().split())
    generate_help = " ".join(cli.get_command(click.Context(cli), "generate").get_help(click.Context(cli)).split())
    for family in families.all_families():
        assert re.search(rf"{family.preferred_gpu_dtype} for [^.;]*\b{family.short_title}\b", readme), family.name
        assert f"{family.short_title} {family.preferred_gpu_dtype}" in generate_help, family.name
        multiples = " or ".join(dict.fromkeys(str(m) for m in sorted(s.size_multiple for s in families.declared_specs(family))))
        assert f"{family.short_title} {multiples}" in generate_help, family.name
