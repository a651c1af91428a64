"""Compatibility names for code written against the old ``common.demo`` driver (now :mod:`common.recon` and
:mod:`common.methods`); the installed ``stepvip demo`` entry point of older installs points at :func:`register`."""

from common.recon.cli import (  # noqa: F401
    DEMO_GROUP,
    add_arguments,
    add_demo_parser,
    add_sampling_arguments,
    demo_main,
    parse_methods,
    register,
    sample_and_write,
)
from common.recon.errors import DemoError  # noqa: F401
from common.recon.outputs import format_table, write_outputs  # noqa: F401
from common.recon.prior_set import Priors, load_priors, resolve_prior_paths  # noqa: F401
from common.recon.run import run_task, truth_metrics  # noqa: F401
from common.recon.task import ReconTask  # noqa: F401
