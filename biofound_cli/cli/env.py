"""``biofound env``: what a bug report and a cluster admin need to know about this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from biofound_cli.cli.common import Output, with_output


@with_output
def env(
    output: Output,
    folders: Annotated[
        Optional[List[Path]],
        typer.Argument(help="Output folders to check for write access (default: runs/ and the current folder)."),
    ] = None,
) -> None:
    """Print versions, threads, CUDA devices, bf16, mamba-ssm, distributed backends, HF cache and write access."""
    from biofound_cli.environment import collect_environment

    facts = collect_environment(folders or [Path("runs"), Path.cwd()])
    if output.json_summary:
        output.summary(facts)
        return
    torch_facts = facts["torch"]
    rows = [(name, version or "not installed") for name, version in facts["versions"].items()]
    rows += [
        ("python", facts["python"]),
        ("platform", facts["platform"]),
        ("cpu cores / torch threads", f"{facts['cpu_count']} / {torch_facts['threads']}"),
        (
            "CUDA",
            f"{torch_facts['cuda_version'] or 'none'}; devices: "
            + (", ".join(f"{d['index']}: {d['name']} ({d['memory_gib']} GiB)" for d in torch_facts["cuda_devices"]) or "none"),
        ),
        ("bf16", f"cpu: yes, cuda: {'yes' if torch_facts['bf16_cuda'] else 'no'}"),
        ("mamba-ssm kernels", torch_facts["mamba_ssm"]),
        ("CPU scan kernel", torch_facts["cpu_scan_kernel"]),
        ("distributed backends", ", ".join(k for k, v in torch_facts["distributed_backends"].items() if v) or "none"),
        ("Hugging Face cache", facts["huggingface"]["cache"]),
        ("HF offline mode", "on" if facts["huggingface"]["offline"] else "off"),
        ("git commit", facts["git_commit"] or "not a git checkout"),
    ]
    rows += [(f"writable: {folder}", "yes" if ok else "NO") for folder, ok in facts["writable"].items()]
    output.summary(dict(rows), title="biofound environment")
