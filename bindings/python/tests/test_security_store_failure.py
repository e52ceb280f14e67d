# test_security_store_failure.py: a journal that cannot be written fails the run loudly in Python too — a
# full disk (a tmpfs of 1 MiB the test mounts and fills) raises WorkflowError with SQLite's
# error, the same Host records again once the disk frees, and a read-only store is refused.
# Mounting needs root (or CAP_SYS_ADMIN): where it is refused, the tests skip and say why.
import errno
import os
import subprocess

import pytest

import troupe
from conftest import lua, mock_config


def mount(args, target):
    result = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}); "
                    "the store-failure tests need root or CAP_SYS_ADMIN")


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk"
    path.mkdir()
    mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], path)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path):
    """Writes a filler file until the disk is full."""
    chunk = b"f" * 65536
    with open(path / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_disk_full_raises_workflow_error_and_the_host_records_again_after(disk, tmp_path):
    config = mock_config(tmp_path)
    config["store"] = str(disk / "troupe.db")
    with troupe.Host(config) as host:
        first = host.run_source(lua("return 'recorded'", name="first"))
        assert first.result(timeout=60) == "recorded"
        host.runs()  # waits until everything queued is committed

        fill(disk)
        run = host.run_source(lua("for i = 1, 50 do troupe.log(string.rep('x', 8192)) end\nreturn 'lost'",
                           name="flood"))
        with pytest.raises(troupe.WorkflowError) as info:
            run.result(timeout=60)
        assert info.value.status == "failed"
        assert "the journal could not record this run" in info.value.message
        assert "database or disk is full" in info.value.message

        os.remove(disk / "filler")
        again = host.run_source(lua("return 'recorded again'", name="again"))
        assert again.result(timeout=60) == "recorded again"
        assert host.show(first.id)["status"] == "succeeded"
        assert host.show(again.id)["status"] == "succeeded"


def test_read_only_store_raises_store_error(disk, tmp_path):
    config = mock_config(tmp_path)
    config["store"] = str(disk / "troupe.db")
    with troupe.Host(config) as host:
        assert host.run_source(lua("return 1", name="first")).result(timeout=60) == 1
    view = tmp_path / "ro"
    view.mkdir()
    mount(["--bind", str(disk)], view)
    try:
        mount(["-o", "remount,ro,bind"], view)
        config["store"] = str(view / "troupe.db")
        with pytest.raises(troupe.StoreError, match="the store is read-only"):
            troupe.Host(config)
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
