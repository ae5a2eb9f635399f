"""``foresight energy run | replay | plan``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from energy.planner import PlannerConfig
from predictor.cli.output import fail

energy_app = typer.Typer(help="Energy saving: forecast node demand, power idle nodes.",
                         no_args_is_help=True)
_err = Console(stderr=True)

PlannerOpt = Annotated[
    Path | None,
    typer.Option("--planner", exists=True, dir_okay=False,
                 help="JSON file of planner settings (see docs/energy.md)."),
]


def _planner(path: Path | None) -> PlannerConfig:
    if path is None:
        return PlannerConfig()
    try:
        return PlannerConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--planner") from exc


@energy_app.command("replay")
def replay_cmd(
    series: Annotated[Path, typer.Option("--series", exists=True,
                                         help="Series file, a folder of per-VC files, or "
                                              "a job log (--format jobs).")],
    fmt: Annotated[str, typer.Option(
        "--format", help="auto, philly, helios-vc, or jobs: busy nodes swept from a job log "
                         "(sacct, SWF, Helios CSV; needs --nodes).")] = "auto",
    nodes: Annotated[int | None, typer.Option(
        "--nodes", min=1, help="With --format jobs: the cluster's node count.")] = None,
    cpus_per_node: Annotated[float | None, typer.Option(
        "--cpus-per-node", min=1,
        help="With --format jobs: nodes of a job the log gives only CPUs for "
             "(default: one node).")] = None,
    test_start: Annotated[str | None, typer.Option(help="First tested step/day.")] = None,
    test_end: Annotated[str | None, typer.Option(help="Last tested step/day (inclusive).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    report: Annotated[Path | None, typer.Option(help="Folder for JSON, trace CSV, plot.")] = None,
    forecaster: Annotated[str, typer.Option(help="xgboost or persistence.")] = "xgboost",
    idle_power_w: Annotated[float, typer.Option(min=0, help="Idle power per node (W).")] = 400.0,
    planner: PlannerOpt = None,
    boot_s: Annotated[int | None, typer.Option(
        "--boot-s", min=0,
        help="Node boot latency in seconds (overrides the planner's boot_s, default 300): "
             "a node woken at the end of step t takes work from step t + 1 + boot_s // step.",
    )] = None,
    save_model: Annotated[bool, typer.Option(
        help="Save the trained forecaster for `energy run`/`plan`.")] = False,
) -> None:
    """Replay a utilisation series under foresight, idle_timeout_30m and always_on."""
    from energy.replay import public_json, replay, write_report
    from energy.series import SeriesError, load_steps

    config = _planner(planner)
    if boot_s is not None:
        config = replace(config, boot_s=boot_s)
    try:
        steps, repairs, name = load_steps(series, fmt, nodes=nodes, cpus_per_node=cpus_per_node)
        for line in repairs:
            _err.print(f"[yellow]repaired:[/] {line}")
        with _err.status("replaying") as status:
            result = replay(
                steps, name, test_start=test_start, test_end=test_end,
                config=config, forecaster=forecaster, idle_power_w=idle_power_w,
                progress=lambda msg: status.update(msg),
            )
    except (SeriesError, ValueError) as exc:
        fail(exc)
    if report is not None:
        for path in write_report(result, report):
            _err.print(f"wrote {path}")
    if save_model:
        from energy.controller import model_dir
        from predictor.models.demand import PeakForecaster, make_forecaster

        history = steps["demand"].loc[: result["test_end"]]
        make_forecaster(forecaster).fit(history).save(model_dir() / "short")
        if forecaster != "persistence" and config.peak_window > 0:
            PeakForecaster(config.peak_window, config.peak_quantile).fit(history).save(
                model_dir() / "peak"
            )
        _err.print(f"saved the forecasters (trained on all steps) to {model_dir()}")
    if as_json:
        typer.echo(json.dumps(public_json(result), indent=2))
    else:
        Console().print(_table(result))


def _table(result: dict[str, Any]) -> Table:
    fc = result["forecast"]
    table = Table(title=(
        f"{result['series']}: {result['test_start']} .. {result['test_end']}, "
        f"{result['nodes']} nodes; 1 h forecast RMSE {fc['rmse_1h']} "
        f"(persistence {fc['baseline_rmse_1h']['persistence_1h']})"
    ))
    policies = result["policies"]
    table.add_column("metric")
    for name in policies:
        table.add_column(name, justify="right")
    for key in next(iter(policies.values())):
        table.add_row(key, *(str(policies[p][key]) for p in policies))
    return table


@energy_app.command("plan")
def plan_cmd(
    planner: PlannerOpt = None,
    _json: Annotated[bool, typer.Option("--json", help="Accepted for symmetry: the plan is "
                                        "always printed as JSON.")] = True,
) -> None:
    """Print the next plan (what a dry-run step would do) as JSON."""
    from energy.controller import current_plan

    typer.echo(json.dumps(current_plan(config=_planner(planner)), indent=2))


@energy_app.command("run")
def run_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run/--apply",
                                          help="Journal the plan only (default) or act.")] = True,
    once: Annotated[bool, typer.Option(help="One step, then exit.")] = False,
    interval: Annotated[float, typer.Option(min=1, help="Seconds between steps.")] = 600.0,
    planner: PlannerOpt = None,
    exclude: Annotated[str, typer.Option(help="Comma-separated nodes never to power.")] = "",
    dev_cluster: Annotated[bool, typer.Option(
        "--dev-cluster", help="Drive the dockerized dev cluster (`foresight cluster up`) "
                              "instead of the Slurm commands on this host.")] = False,
) -> None:
    """Run the controller loop against Slurm (dry-run unless --apply)."""
    from energy.controller import Controller, load_forecaster
    from energy.slurm_view import SlurmClusterView
    from slurm_hooks.stopping import Stop

    adapter = None
    if dev_cluster:
        from slurm_hooks.devcluster import DevCluster

        adapter = DevCluster().adapter()
    view = SlurmClusterView(adapter=adapter, exclude={n for n in exclude.split(",") if n})
    controller = Controller(view, config=_planner(planner), forecaster=load_forecaster(),
                            peak_forecaster=load_forecaster(name="peak"), apply=not dry_run)
    with Stop().on_signals() as stop:
        for rec in controller.recover():
            _err.print(f"recovered journal entry: {rec}")
        _err.print(f"controller {'APPLYING' if not dry_run else 'dry-run'}; journal "
                   f"{controller.journal.path}")
        while not stop.requested:
            report = controller.step()
            typer.echo(json.dumps(report.to_dict()))
            if once:
                raise typer.Exit(2 if report.status in ("skipped", "held") else 0)
            if stop.wait(interval):
                break
    _err.print("controller stopped")
