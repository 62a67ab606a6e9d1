"""Generate vidlatent's man pages and shell completions from its click definitions.

    python tools/gendocs.py           # (re)write man/*.1 and completions/*
    python tools/gendocs.py --check   # exit 1, listing stale files, if they are out of date

Every page comes from the click objects themselves (usage, help text, options, arguments, and
the "Examples:" block of each command's epilog), so subcommands added to
``vidlatent.cli.COMMANDS`` are documented without any per-command code here. Completion
scripts are the ones click itself emits for ``_VIDLATENT_COMPLETE=<shell>_source vidlatent``,
produced in-process. Output is deterministic (no dates), so ``--check`` is stable.

Only click and the standard library are used; importing the CLI does not import torch.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from vidlatent import __version__
from vidlatent.cli import main as cli

PROG = "vidlatent"
ROOT = Path(__file__).resolve().parent.parent
MAN_DIR = ROOT / "man"
COMPLETIONS_DIR = ROOT / "completions"
COMPLETION_FILES = {"bash": "vidlatent.bash", "zsh": "_vidlatent", "fish": "vidlatent.fish"}
COMPLETE_VAR = "_VIDLATENT_COMPLETE"


# --- roff helpers ------------------------------------------------------------------------

def esc(text: str) -> str:
    """Escape text for roff: backslashes, hyphens (as \\- so options copy and paste), control lines."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def bold(text: str) -> str:
    return f"\\fB{esc(text)}\\fR"


def italic(text: str) -> str:
    return f"\\fI{esc(text)}\\fR"


def literal(lines: list[str]) -> list[str]:
    """An indented, unfilled block (commands, examples)."""
    return [".PP", ".RS 4", ".nf", *(esc(line) for line in lines), ".fi", ".RE"]


def clean(text: str | None) -> str:
    """Help text as click shows it: dedented, cut at \\f."""
    return inspect.cleandoc((text or "").split("\f")[0])


def paragraphs(text: str) -> list[str]:
    """Click help text as roff: blank lines separate paragraphs; a \\b paragraph keeps its lines."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", clean(text)):
        lines = block.split("\n")
        if lines[0].strip() == "\b":
            body = inspect.cleandoc("\n".join(lines[1:])).split("\n")
            out += literal(body)
        elif block.strip():
            out += [".PP", esc(" ".join(line.strip() for line in lines))]
    return out


def split_examples(epilog: str | None) -> tuple[str, list[str]]:
    """An epilog's text without its "Examples:" block, and that block's (dedented) lines."""
    rest: list[str] = []
    examples: list[str] = []
    in_examples = False
    for line in clean(epilog).replace("\b", "").split("\n"):
        if line.strip().lower() == "examples:":
            in_examples = True
        elif in_examples and (line.startswith((" ", "\t")) or not line.strip()):
            if line.strip():
                examples.append(line)
        else:
            in_examples = False
            rest.append(line)
    return "\n".join(rest).strip(), inspect.cleandoc("\n".join(examples)).split("\n") if examples else []


# --- click introspection ------------------------------------------------------------------

def walk(command: click.Command, name: str, parent: click.Context | None = None) -> Iterator[click.Context]:
    """A context for ``command`` and, depth first, for each of its visible subcommands."""
    settings = {"show_default": True, **command.context_settings}
    ctx = click.Context(command, info_name=name, parent=parent, **settings)
    yield ctx
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, sub_name, ctx)


def page_name(ctx: click.Context) -> str:
    return ctx.command_path.replace(" ", "-")


def metavar(param: click.Parameter, ctx: click.Context) -> str:
    try:
        return param.make_metavar(ctx)
    except TypeError:  # click < 8.2 takes no context
        return param.make_metavar()  # type: ignore[call-arg]


def describe_argument(param: click.Argument) -> str:
    kind = param.type
    if isinstance(kind, click.Path):
        what = {(True, True): "A file or directory", (True, False): "A file", (False, True): "A directory"}
        text = what.get((kind.file_okay, kind.dir_okay), "A path")
        if kind.allow_dash:
            text += ", or - (standard input or output)"
    elif isinstance(kind, click.Choice):
        text = "One of " + ", ".join(map(str, kind.choices))
    else:
        text = f"A value of type {kind.name}"
    text += "." if param.required else " (optional)."
    return text + (" May be repeated." if param.nargs == -1 else "")


def option_details(param: click.Option, ctx: click.Context) -> list[str]:
    """Environment variables, default, range and requiredness, as click's --help shows them."""
    envvar = param.envvar or (
        f"{ctx.auto_envvar_prefix}_{param.name.upper()}"
        if ctx.auto_envvar_prefix and param.allow_from_autoenv and param.name else None
    )
    envvars = [envvar] if isinstance(envvar, str) else list(envvar or [])
    details = [f"Environment: {', '.join(bold(e) for e in envvars)}."] if envvars else []
    extra = param.get_help_extra(ctx) if hasattr(param, "get_help_extra") else {}
    if "default" in extra:
        details.append(f"Default: {bold(str(extra['default']))}.")
    if "range" in extra:
        details.append(f"Range: {esc(str(extra['range']))}.")
    if "required" in extra:
        details.append("Required.")
    return details


# --- pages -----------------------------------------------------------------------------

def render_page(ctx: click.Context, children: list[click.Context], examples: list[str], related: list[str]) -> str:
    command = ctx.command
    name = page_name(ctx)
    short = command.get_short_help_str(limit=200).rstrip(".")
    lines = [
        f'.TH "{esc(name.upper())}" "1" "" "{PROG} {esc(__version__)}" "User Commands"',
        ".nh",  # no hyphenation: names, options and environment variables stay whole
        ".ad l",
        ".SH NAME", f"{esc(name)} \\- {esc(short)}",
        ".SH SYNOPSIS", f"{bold(ctx.command_path)} {esc(' '.join(command.collect_usage_pieces(ctx)))}",
        ".SH DESCRIPTION", *paragraphs(command.help or ""),
    ]
    epilog_text, _ = split_examples(command.epilog)
    lines += paragraphs(epilog_text) if epilog_text else []
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    arguments = [p for p in params if isinstance(p, click.Argument)]
    if arguments:
        lines.append(".SH ARGUMENTS")
        for arg in arguments:
            lines += [".TP", italic(metavar(arg, ctx)), esc(describe_argument(arg))]
    options = [p for p in params if isinstance(p, click.Option)]
    if options:
        lines.append(".SH OPTIONS")
        for opt in options:
            flags = ", ".join(bold(o) for o in opt.opts)
            if opt.secondary_opts:
                flags += " / " + ", ".join(bold(o) for o in opt.secondary_opts)
            if not opt.is_flag and not opt.count:
                flags += " " + italic(metavar(opt, ctx))
            help_text = " ".join(line.strip() for line in clean(opt.help).split("\n") if line.strip())
            lines += [".TP", flags, " ".join(filter(None, [esc(help_text), *option_details(opt, ctx)]))]
    if children:
        lines.append(".SH COMMANDS")
        for child in children:
            child_short = child.command.get_short_help_str(limit=200)
            lines += [".TP", bold(child.info_name or ""), f"{esc(child_short)} See {bold(page_name(child))}(1)."]
    lines += [".SH EXAMPLES", *literal(examples)]
    if related:
        lines += [".SH SEE ALSO", ",\n".join(f".BR {esc(r)} (1)" for r in related)]
    return "\n".join(lines) + "\n"


def command_lines(text: str | None) -> list[str]:
    """Literal (\\b) lines of a help text that are commands, e.g. the root's pipe example."""
    return [line.strip() for line in clean(text).split("\n") if line.strip().startswith(PROG + " ")]


def render_man_pages() -> dict[str, str]:
    """Man page file name -> roff text, for the root and every (nested) subcommand."""
    contexts = list(walk(cli, PROG))
    pages: dict[str, str] = {}
    for ctx in contexts:
        children = [c for c in contexts if c.parent is ctx]
        examples = split_examples(ctx.command.epilog)[1]
        if children:  # a group also shows its help's commands and its subcommands' first examples
            examples = examples + command_lines(ctx.command.help)
            for child in children:
                examples += split_examples(child.command.epilog)[1][:1]
            examples = list(dict.fromkeys(examples))
        # SEE ALSO: the parent, the siblings, the children
        related = [page_name(c) for c in contexts if c is not ctx and c.parent in (ctx, ctx.parent)]
        related = ([page_name(ctx.parent)] if ctx.parent else []) + related
        pages[f"{page_name(ctx)}.1"] = render_page(ctx, children, examples, related)
    return pages


def render_completions() -> dict[str, str]:
    """Completion file name -> the script click emits for ``_VIDLATENT_COMPLETE=<shell>_source``."""
    scripts: dict[str, str] = {}
    for shell, filename in COMPLETION_FILES.items():
        completion_class = get_completion_class(shell)
        assert completion_class is not None, shell
        source = completion_class(cli, {}, PROG, COMPLETE_VAR).source()
        scripts[filename] = source if source.endswith("\n") else source + "\n"
    return scripts


def expected_files() -> dict[Path, str]:
    files = {MAN_DIR / name: text for name, text in render_man_pages().items()}
    files.update({COMPLETIONS_DIR / name: text for name, text in render_completions().items()})
    return files


def stale_files() -> list[Path]:
    """Generated files that are missing or differ, and old man pages no command produces."""
    expected = expected_files()
    stale = [path for path, text in expected.items() if not path.exists() or path.read_text() != text]
    stale += [path for path in sorted(MAN_DIR.glob(f"{PROG}*.1")) if path not in expected]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date files (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)}")
        if stale:
            print("run: python tools/gendocs.py", file=sys.stderr)
        return 1 if stale else 0
    expected = expected_files()
    for path in sorted(MAN_DIR.glob(f"{PROG}*.1")):
        if path not in expected:
            path.unlink()
            print(f"removed {path.relative_to(ROOT)}")
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
