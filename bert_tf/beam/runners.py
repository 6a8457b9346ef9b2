"""Beam runners by the names users type, with their own pipeline options known before bert-tf checks them.

Beam resolves `--runner NAME` against its own list, which leaves out runners whose
module is not imported by default (the DaskRunner), and it registers a runner's
options (`--dask_client_address`) only once that module is imported. So
`--runner DaskRunner --dask_client_address HOST:PORT` would be refused twice:
once as an unknown option, once as an unknown runner. `prepare_pipeline_args`
rewrites the short name to the runner's class path and imports its module, before
`pipeline.check_pipeline_args` looks at the options.

`runner_name` is plain string work (no Beam import), so the command line can ask
which runner was chosen before any heavy import.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from bert_tf.errors import InvalidValue

#: Short names -> (Beam's class path, the extra that installs what it needs).
RUNNERS = {
    "DaskRunner": ("apache_beam.runners.dask.dask_runner.DaskRunner", "dask"),
}
DASK = RUNNERS["DaskRunner"][0]


def runner_name(args: Sequence[str]) -> str | None:
    """The value of the last `--runner` in `args` (as Beam reads it), or None."""
    name = None
    args = list(args)
    for i, arg in enumerate(args):
        if arg == "--runner" and i + 1 < len(args):
            name = args[i + 1]
        elif arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
    return name


def resolve(name: str | None) -> str | None:
    """The class path of a short runner name bert-tf maps (any case, with or without "Runner"); else `name`."""
    if name is None:
        return None
    for short, (path, _) in RUNNERS.items():
        if name.lower() in (short.lower(), short.lower().removesuffix("runner")):
            return path
    return name


def is_dask(args: Sequence[str]) -> bool:
    """Whether these pipeline options run on Beam's DaskRunner."""
    return resolve(runner_name(args)) == DASK


def prepare_pipeline_args(args: Sequence[str]) -> list[str]:
    """`args` with a short runner name replaced by its class path, and that runner's options registered.

    Raises:
        ValueError: the runner's packages are missing (one line, with the pip command).
    """
    name = runner_name(args)
    path = resolve(name)
    if path is None:
        return list(args)
    out = []
    skip = False
    for arg in args:
        if skip:
            out.append(path)
            skip = False
        elif arg == "--runner":
            out.append(arg)
            skip = True
        elif arg.startswith("--runner="):
            out.append(f"--runner={path}")
        else:
            out.append(arg)
    extra = next((e for p, e in RUNNERS.values() if p == path), None)
    if extra is not None:
        try:
            importlib.import_module(path.rsplit(".", 1)[0])  # registers the runner's PipelineOptions
            if extra == "dask":
                import dask.distributed  # noqa: F401 - Beam imports it lazily, and fails late without it
        except ImportError as e:
            raise InvalidValue(f"--runner {name} needs {e.name}, which is not installed; install it with: "
                               f'pip install "bert_tf[{extra}]"') from None
    return out
