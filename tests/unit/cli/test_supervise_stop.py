"""``archbench worker --gpus``'s supervisor on SIGTERM: it passes the signal on and waits for
each GPU's worker to finish its running trial (Celery's warm shutdown), however long that
takes, instead of killing it after 20 s (the container's stop_grace_period decides)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# A child that, on SIGTERM, takes 3 s to finish "its trial" and then writes that it did.
CHILD = (
    "import signal, sys, time, pathlib; "
    "done = pathlib.Path(sys.argv[1]); "
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(3), done.write_text('finished'), "
    "sys.exit(0))); "
    "pathlib.Path(sys.argv[1] + '.ready').write_text('ready'); "
    "time.sleep(60)"
)
SUPERVISOR = (
    "import subprocess, sys; from cli.main import _supervise; "
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]]); "
    "sys.exit(_supervise([child], stop_seconds=None if sys.argv[3] == 'none' else 1.0))"
)


def _stop_supervisor(tmp_path: Path, stop_seconds: str) -> tuple[int, float, Path]:
    done = tmp_path / f"done-{stop_seconds}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, CHILD, str(done), stop_seconds], cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while not Path(f"{done}.ready").exists():
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.1)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    return code, time.monotonic() - started, done


def test_the_gpu_workers_supervisor_waits_for_the_running_trial(tmp_path: Path) -> None:
    code, took, done = _stop_supervisor(tmp_path, "none")
    assert code == 0
    assert done.read_text() == "finished"  # the child's trial ended in its own time
    assert took >= 3


def test_a_supervisor_with_a_stop_limit_still_kills_at_it(tmp_path: Path) -> None:
    _, took, done = _stop_supervisor(tmp_path, "1.0")
    assert not done.exists()  # killed before its 3 s were up
    assert took < 3
