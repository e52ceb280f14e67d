"""setup.py: the compiled parts of the troupe wheel (pyproject.toml holds the rest).

The wheel holds the package, its native module (troupe/_troupe*.so) and the provider plugins the
module loads from troupe/plugins. They come from a CMake build tree, the first of:

1. this folder, when it is ``<build>/python`` of a built tree (CMake writes troupe_build.json
   here, naming the module and the plugins): ``pip install <build>/python``;
2. ``$TROUPE_BUILD_DIR`` (an absolute path), a tree already built for this Python;
3. a tree this script configures and builds (target troupe_python, no tests) from the source
   checkout two folders up, in setuptools' temporary build folder: minutes, but offline.

The module must have been built for the Python that runs pip (its file name says which).
"""

import importlib.machinery
import json
import os
import re
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = "troupe_build.json"


def _source_root():
    root = os.path.normpath(os.path.join(HERE, "..", ".."))
    if not os.path.isfile(os.path.join(root, "bindings", "python", "_troupe.cpp")):
        return None
    return root


def _given_manifest():
    """The manifest of case 1 or 2, or None (case 3)."""
    if os.path.isfile(os.path.join(HERE, MANIFEST)):
        return os.path.join(HERE, MANIFEST)
    build_dir = os.environ.get("TROUPE_BUILD_DIR")
    if build_dir:
        if not os.path.isabs(build_dir):  # pip runs this script in the project's folder
            sys.exit(f"TROUPE_BUILD_DIR={build_dir}: give an absolute path (e.g. $PWD/build)")
        path = os.path.join(build_dir, "python", MANIFEST)
        if not os.path.isfile(path):
            sys.exit(f"TROUPE_BUILD_DIR={build_dir}: no python/{MANIFEST}; build it first "
                     "(cmake --build DIR --target troupe_python)")
        return path
    return None


def _version():
    manifest = _given_manifest()
    if manifest:
        with open(manifest, encoding="utf-8") as f:
            return json.load(f)["version"]
    root = _source_root()
    if root is None:
        sys.exit("no compiled troupe module: set TROUPE_BUILD_DIR to a built tree, or install "
                 "from a troupe source checkout (bindings/python)")
    with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(troupe VERSION ([0-9.]+)", f.read())
    return m.group(1)


def _cmake_build(build_dir):
    """Case 3: configures (once) and builds the module and the plugins; returns the manifest."""
    cmake = shutil.which("cmake")
    if cmake is None:
        sys.exit("building troupe's native module needs cmake (Debian: apt-get install cmake), "
                 "or set TROUPE_BUILD_DIR to a built tree")
    if not os.path.isfile(os.path.join(build_dir, "CMakeCache.txt")):
        # RelWithDebInfo: the build type setup.sh and CI build and test (with Release's -O3,
        # GCC 12 reports a -Wrestrict false positive in libstdc++: an error under -Werror).
        configure = [cmake, "-S", _source_root(), "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                     "-DTROUPE_BUILD_TESTS=OFF", "-DTROUPE_BUILD_PYTHON=ON",
                     f"-DPython3_EXECUTABLE={sys.executable}"]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        subprocess.run(configure, check=True)
    subprocess.run([cmake, "--build", build_dir, "--target", "troupe_python",
                    "--parallel", str(os.cpu_count() or 1)], check=True)
    return os.path.join(build_dir, "python", MANIFEST)


class BuildPyWithNative(build_py):
    """build_py, then the native module and the plugins copied into the wheel's tree."""

    def run(self):
        super().run()
        manifest = _given_manifest()
        if manifest is None:
            build_temp = self.get_finalized_command("build").build_temp
            manifest = _cmake_build(os.path.abspath(os.path.join(build_temp, "cmake")))
        with open(manifest, encoding="utf-8") as f:
            built = json.load(f)
        module = built["module"]
        if not any(module.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES):
            sys.exit(f"{module} was built for another Python than {sys.executable}; build with "
                     f"-DPython3_EXECUTABLE={sys.executable}")
        package = os.path.join(self.build_lib, "troupe")
        self.copy_file(module, os.path.join(package, os.path.basename(module)))
        self.mkpath(os.path.join(package, "plugins"))
        for plugin in built["plugins"]:
            self.copy_file(plugin, os.path.join(package, "plugins", os.path.basename(plugin)))


class BinaryDistribution(Distribution):
    """A wheel for this platform and Python (it holds compiled code), installed in platlib."""

    def has_ext_modules(self):
        return True


setup(version=_version(), cmdclass={"build_py": BuildPyWithNative}, distclass=BinaryDistribution)
