"""The ``foresight`` command: one entry point, one sub-command module per area.

Each area registers its commands here; the modules stay small and own their
own options.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="foresight",
    help="Foresight: predictive scheduling for Slurm.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Foresight: predictive scheduling for Slurm."""


@app.command("version")
def version() -> None:
    """Print Foresight's version."""
    from predictor import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app()


from predictor.cli.serve import serve as _serve  # noqa: E402

app.command("serve")(_serve)

from predictor.cli.logs import logs_app  # noqa: E402

app.add_typer(logs_app, name="logs")

from predictor.cli.cluster import cluster_app  # noqa: E402

app.add_typer(cluster_app, name="cluster")

from energy.cli import energy_app  # noqa: E402

app.add_typer(energy_app, name="energy")

from predictor.cli.hooks import completion_feed as _completion_feed  # noqa: E402
from predictor.cli.hooks import priority_daemon as _priority_daemon  # noqa: E402

app.command("priority-daemon")(_priority_daemon)
app.command("completion-feed")(_completion_feed)

from predictor.cli.check import check as _check  # noqa: E402

app.command("check")(_check)

from predictor.cli.simulate import simulate as _simulate  # noqa: E402

app.command("simulate")(_simulate)

from predictor.cli.evaluate import evaluate_app  # noqa: E402
from predictor.cli.models import models_app  # noqa: E402
from predictor.cli.train import train as _train  # noqa: E402

app.command("train")(_train)
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(models_app, name="models")
