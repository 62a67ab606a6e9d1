"""vidlatent env: versions, devices and defaults, for bug reports."""

from __future__ import annotations

import json

import click

from vidlatent.commands.options import common_options
from vidlatent.commands.reporting import State, pass_state, print_json, text_console


@click.command(
    epilog="""\b
Examples:
  vidlatent env
  vidlatent env --json | python -m json.tool
"""
)
@common_options
@pass_state
def command(state: State) -> None:
    """Show versions (vidlatent, Python, torch, diffusers, transformers, accelerate, peft, ffmpeg),
    the devices found with their memory, what --device/--dtype/--offload auto would pick, which
    of --offload group (CUDA streams), --quantize fp8, --compile, --lora and which --attention
    backends this machine can use (--json: what each of the others needs), and the cache folders. Paste it into bug reports; --json prints the same as one object.
    """
    from vidlatent.environment import describe_environment

    facts = describe_environment()
    if state.json:
        print_json(json.dumps(facts, indent=2))
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_row("vidlatent", facts["vidlatent"])
    table.add_row("python", f"{facts['python']} ({facts['platform']})")
    for name, version in facts["packages"].items():
        table.add_row(name, version or "not installed")
    table.add_row("ffmpeg", f"{facts['ffmpeg']['version']} ({facts['ffmpeg']['path']})")
    for device in facts["devices"]:
        memory = f", {device['memory_free_gb']} of {device['memory_total_gb']} GB free" if "memory_total_gb" in device else ""
        table.add_row(f"device {device['name']}", f"{device.get('model', device['kind'])}{memory}")
    auto = facts["auto"]
    table.add_row("auto picks", f"device {auto['device']}, dtype {auto['dtype']}, offload {auto['offload_generate']} "
                                f"(generate) / {auto['offload_decode']} (decode)")
    speed = facts["acceleration"]
    yes = {True: "yes", False: "no"}
    table.add_row("acceleration", f"CUDA streams {yes[speed['cuda_streams']]} (--offload group), fp8 storage "
                                  f"{yes[speed['fp8_storage']]} (--quantize fp8), compile {speed['compile_backend']} "
                                  f"{'ready' if speed['compile_ready'] else 'NOT ready (no C++ compiler, or no triton on CUDA)'}"
                                  f" (--compile), LoRA {yes[speed['lora']]} (--lora)")
    attention = speed["attention"]
    table.add_row("attention", f"usable: {', '.join(name for name, needs in attention.items() if needs is None)} "
                               f"(--attention); not here: {', '.join(name for name, needs in attention.items() if needs)}")
    table.add_row("cache", f"hub {facts['cache']['huggingface']}{' (offline)' if facts['cache']['hub_offline'] else ''}; "
                           f"vidlatent {facts['cache']['vidlatent']}")
    for name, value in facts["environment"].items():
        table.add_row(name, value)
    text_console().print(table)
