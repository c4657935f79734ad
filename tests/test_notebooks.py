"""Each notebook runs top to bottom on a copy of the trained sample lake."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"


def test_notebooks_are_stored_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01-explore-lake.ipynb", "02-train-lightfm.ipynb",
                                          "03-batch-score.ipynb", "04-online-outcomes.ipynb"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, path.name
        assert any("from lakehouse" in "".join(c["source"]) for c in cells), path.name


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, trained_lake, tmp_path, monkeypatch):
    import shutil

    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager

    from tests.notebook_client import notebook_client

    shutil.copytree(trained_lake.lake, tmp_path / "lake")
    settings = trained_lake.replace(lake=tmp_path / "lake")
    # The kernel inherits this environment: the lake, and a quick model for notebook 02.
    monkeypatch.setenv("LAKEHOUSE_LAKE", str(settings.lake))
    monkeypatch.setenv("LAKEHOUSE_EPOCHS", "5")
    monkeypatch.setenv("LAKEHOUSE_COMPONENTS", "8")
    monkeypatch.setenv("LAKEHOUSE_TRAIN_TRIALS", "1")
    # jupyter_client starts a kernelspec whose argv is "python" with sys.executable, so
    # the kernel is this venv's interpreter; check that is the spec we get.
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] in ("python", "python3", sys.executable), spec.argv
    nb = nbformat.read(path, as_version=4)
    # Bounded and on IPC sockets: a lost zmq wake-up costs a second, a hang fails with the
    # cell named (tests/notebook_client.py says why).
    client = notebook_client(nb, tmp_path)
    kernels = []
    client.on_notebook_start = lambda notebook: kernels.append(
        (client.km.transport, type(client.kc.shell_channel).__name__))
    client.execute()
    assert kernels == [("ipc", "SlicedPollChannel")]
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    # Real widgets (ipywidgets controls, tqdm bars) and Plotly figures, not text
    # fallbacks: the kernel sends their own MIME types, which JupyterLab renders offline.
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    mimetypes = {m for o in outputs for m in o.get("data", {})}
    assert WIDGET in mimetypes, sorted(mimetypes)
    assert PLOTLY in mimetypes, sorted(mimetypes)
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "TqdmWarning" not in stderr and "IProgress not found" not in stderr, stderr
