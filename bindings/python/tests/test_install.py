# test_install.py: `cmake --install <build> --component python` gives a package that imports and
# runs workflows from anywhere, with its plugins next to it.
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD_DIR, WORKFLOWS

SCRIPT = """
import json, sys, troupe
host = troupe.Host({"store": "runs.db", "providers": {"mock": {"plugin": "mock"}},
                    "fallback_provider": "mock"})
out = host.run(sys.argv[1]).result(timeout=60)
print(json.dumps({"file": troupe.__file__, "path": host.plugin_search_path(), "chars": len(out)}))
host.close()
"""


def test_installed_package_imports_and_finds_its_own_plugins(tmp_path):
    cmake = shutil.which("cmake")
    if not BUILD_DIR or not cmake:
        pytest.skip("needs TROUPE_BUILD_DIR and cmake")
    prefix = tmp_path / "prefix"
    subprocess.run([cmake, "--install", BUILD_DIR, "--component", "python", "--prefix", str(prefix)],
                   check=True, capture_output=True, text=True)
    found = glob.glob(str(prefix / "**" / "troupe" / "__init__.py"), recursive=True)
    assert len(found) == 1
    site = os.path.dirname(os.path.dirname(found[0]))
    assert glob.glob(os.path.join(site, "troupe", "plugins", "mock.so"))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TROUPE_PLUGIN_PATH")}
    env["PYTHONPATH"] = site
    proc = subprocess.run([sys.executable, "-c", SCRIPT, os.path.join(WORKFLOWS, "pr_review.lua")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["file"].startswith(site)
    assert report["path"] == [os.path.join(site, "troupe", "plugins")]
    assert report["chars"] > 100
