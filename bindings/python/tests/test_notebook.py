# test_notebook.py: examples/notebooks/quickstart.ipynb runs headless (nbclient) without errors.
import json
import os
import sys

import pytest

from conftest import SOURCE_DIR

NOTEBOOK = os.path.join(SOURCE_DIR, "examples", "notebooks", "quickstart.ipynb")


def test_quickstart_notebook_runs_headless_and_shows_the_run(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # Pin the "python3" kernel to this interpreter (which imports the built module through
    # PYTHONPATH), whatever kernels the machine or the user has installed.
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("QUICKSTART_STORE", str(tmp_path / "quickstart.db"))
    monkeypatch.setenv("TROUPE_SOURCE_DIR", SOURCE_DIR)
    monkeypatch.setenv("TROUPE_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend makes PNGs
    work = tmp_path / "cwd"
    work.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    text = []
    kinds = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            kinds.update(out.get("data", {}).keys())
            text.append(out.get("text", ""))
            text.append(str(out.get("data", {}).get("text/plain", "")))
    joined = "\n".join(text)
    assert "▶ pr_review" in joined and "⇉ 2" in joined and "■ succeeded" in joined
    assert "2.1/1" in joined and "2.2/1" in joined  # the parallel branches, streamed
    assert "text/markdown" in kinds  # the review
    assert "text/html" in kinds or "step_key" in joined  # the steps table
    assert "image/png" in kinds or "fork" in joined  # the picture
    assert (tmp_path / "quickstart.db").exists()
