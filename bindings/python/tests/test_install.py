# test_install.py: the installed package imports and runs workflows from anywhere, with its
# plugins next to it — installed by `cmake --install <build> --component python`, or offline by
# pip (`--no-build-isolation`, no index) from the built tree or from bindings/python.
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

import troupe
from conftest import BUILD_DIR, SOURCE_DIR, WORKFLOWS

SCRIPT = """
import json, sys, troupe
host = troupe.Host({"store": "runs.db", "providers": {"mock": {"plugin": "mock"}},
                    "fallback_provider": "mock"})
out = host.run(sys.argv[1]).result(timeout=60)
print(json.dumps({"file": troupe.__file__, "path": host.plugin_search_path(), "chars": len(out),
                  "version": troupe.__version__}))
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

    report = run_installed(sys.executable, dict(os.environ, PYTHONPATH=site), tmp_path)
    assert report["file"].startswith(site)
    assert report["path"] == [os.path.join(site, "troupe", "plugins")]
    assert report["chars"] > 100


def run_installed(python, env, cwd):
    """SCRIPT (the demo workflow on the mock) with `python` and `env`, away from the build tree
    (no TROUPE_PLUGIN_PATH; PYTHONPATH only when `env` sets it to the install)."""
    env = {k: v for k, v in env.items() if k != "TROUPE_PLUGIN_PATH"}
    proc = subprocess.run([python, "-c", SCRIPT, os.path.join(WORKFLOWS, "pr_review.lua")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pip_install_into_a_venv(tmp_path, project, env):
    """`pip install --no-index --no-build-isolation project` into a new venv; its python and
    site-packages. The venv sees Debian's pip, setuptools and wheel (the build backend) through
    --system-site-packages; nothing is downloaded."""
    missing = [m for m in ("pip", "setuptools", "wheel") if importlib.util.find_spec(m) is None]
    if missing:  # not imported here: setuptools replaces distutils in the importing process
        pytest.skip(f"needs {', '.join(missing)} (Debian: apt-get install python3-pip)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, capture_output=True, text=True)
    python = str(venv / "bin" / "python")
    pip_env = dict(env, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip_env.pop("PYTHONPATH", None)
    proc = subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                           str(project)], env=pip_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    return python, site


def check_pip_install(tmp_path, python, site):
    package = os.path.join(site, "troupe")
    for name in ("py.typed", "_troupe.pyi", "host.py", os.path.join("plugins", "mock.so")):
        assert os.path.exists(os.path.join(package, name)), name
    assert glob.glob(os.path.join(package, "_troupe*.so"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    report = run_installed(python, env, tmp_path)
    assert report["file"] == os.path.join(package, "__init__.py")
    assert report["path"] == [os.path.join(package, "plugins")]
    assert report["chars"] > 100
    assert report["version"] == troupe.__version__


@pytest.fixture
def built_tree():
    if not BUILD_DIR or not os.path.isfile(os.path.join(BUILD_DIR, "python", "troupe_build.json")):
        pytest.skip("needs TROUPE_BUILD_DIR with a built troupe_python target")
    return BUILD_DIR


def test_pip_installs_the_built_tree_offline(tmp_path, built_tree):
    # pip builds in the project's folder (build/, troupe.egg-info/): a copy keeps the build tree
    # as it is; troupe_build.json in it names the module and plugins by absolute path.
    project = tmp_path / "project"
    shutil.copytree(os.path.join(built_tree, "python"), project,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k != "TROUPE_BUILD_DIR"}  # the copy is enough
    python, site = pip_install_into_a_venv(tmp_path, project, env)
    check_pip_install(tmp_path, python, site)


def test_pip_installs_bindings_python_offline_from_a_build_dir(tmp_path, built_tree):
    # `pip install ./bindings/python` with TROUPE_BUILD_DIR: the package files from the source
    # folder, the compiled parts from the build (without it, setup.py builds them with CMake).
    project = tmp_path / "project"
    shutil.copytree(os.path.join(SOURCE_DIR, "bindings", "python"), project,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "tests"))
    python, site = pip_install_into_a_venv(tmp_path, project, dict(os.environ, TROUPE_BUILD_DIR=built_tree))
    check_pip_install(tmp_path, python, site)
