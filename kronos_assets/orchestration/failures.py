"""Why a run failed, in one line, and the alert that says so: shared by the failure sensor, ``kronos-assets run``
and ``kronos-assets health``."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg

from kronos_assets.orchestration.alerts import deliver_pending, record_alert
from kronos_assets.orchestration.runs import run_label

MAX_CAUSE = 400  # room for a damaged file's path and what to do about it


def _one_line(text: str, limit: int = MAX_CAUSE) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _user_error(err: Any) -> str:
    """The innermost user exception of a serialised error chain, as 'Class: message' (not Dagster's wrapper)."""
    while err.cause is not None and (
        err.message.startswith("dagster._core.errors")
        or err.cls_name in ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError")
    ):
        err = err.cause
    message = err.message.strip()
    head = message.split(":", 1)
    if len(head) == 2 and "." in head[0] and " " not in head[0]:  # 'pkg.module.Error: text' -> 'Error: text'
        message = head[0].rsplit(".", 1)[1] + ":" + head[1]
    return message


def run_cause(instance: dg.DagsterInstance, run_id: str) -> str:
    """One line: the first failed step and its exception, else the run failure's own message."""
    run_failure = None
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}):
        ev = entry.dagster_event
        if ev is None:
            continue
        if ev.event_type == dg.DagsterEventType.STEP_FAILURE:
            data = ev.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                return _one_line(f"{ev.step_key}: {data.user_failure_data.description}")
            if data.error is not None:
                return _one_line(f"{ev.step_key}: {_user_error(data.error)}")
        elif run_failure is None:
            error = getattr(ev.event_specific_data, "error", None)
            run_failure = _user_error(error) if error is not None else (ev.message or entry.message)
    return _one_line(run_failure or "no error recorded")


def failure_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, profile: str) -> dict[str, Any]:
    cause = run_cause(instance, run.run_id)
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "profile": profile,
        "partition": run.tags.get("dagster/partition")
        or f"{run.tags.get('dagster/asset_partition_range_start', '')}.."
        f"{run.tags.get('dagster/asset_partition_range_end', '')}",
        "cause": cause,
        "summary": f"kronos_assets ({profile}): {run_label(run)} failed (run {run.run_id[:8]}): {cause}",
    }


def alert_failed_runs(instance: dg.DagsterInstance, run_ids: list[str], folder: Path, profile: str) -> str:
    """Records an alert for each failed run not yet alerted, then delivers what is pending (bounded)."""
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status == dg.DagsterRunStatus.FAILURE:
            record_alert(folder, failure_alert(instance, run, profile))
    return deliver_pending(folder)
