"""Progress renderers outside the terminal: notebooks.

The library reports progress as :class:`~lakehouse.context.ProgressEvent`
values to a callback; it never prints. The CLI renders them as terminal bars
or cron-friendly lines (``lakehouse.cli``); in JupyterLab,
:func:`notebook_progress` renders them as ``tqdm.auto`` widgets::

    from lakehouse.context import RunContext
    from lakehouse.progress import notebook_progress

    ctx = RunContext.open(progress=notebook_progress())
    ingest(ctx)
"""

from __future__ import annotations

from typing import Any

from lakehouse.context import ProgressEvent, ProgressFn


def notebook_progress(**tqdm_options: Any) -> ProgressFn:
    """A progress callback drawing one ``tqdm.auto`` bar per task (a widget in Jupyter).

    Args:
        **tqdm_options: Passed to every ``tqdm`` bar (e.g. ``leave=False``).
    """
    from tqdm.auto import tqdm

    bars: dict[tuple[str, str], Any] = {}

    def render(event: ProgressEvent) -> None:
        key = (event.step, event.task)
        bar = bars.get(key)
        if bar is None:
            bar = bars[key] = tqdm(total=event.total, desc=f"{event.step} {event.task}",
                                   **tqdm_options)
        if event.total is not None and bar.total != event.total:
            bar.total = event.total
        bar.n = event.done  # absolute: a re-read of an endpoint starts again from 1
        if event.message:
            bar.set_postfix_str(event.message, refresh=False)
        bar.refresh()
        if event.finished:
            bar.close()
            del bars[key]

    return render
