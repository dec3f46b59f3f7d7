"""The test session's temporary directory (tests/session_tmpdir.py): what SIGKILLed children leave
there of multiprocessing's is removed, anything else stays and is named."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import child_env

HERE = os.path.dirname(os.path.abspath(__file__))

GENERATED = """
import os
import subprocess
import sys

KILLED = (
    "import os, signal, multiprocessing.util as u; "
    "print(u.get_temp_dir(), flush=True); os.kill(os.getpid(), signal.SIGKILL)"
)


def test_a_killed_child_leaves_its_multiprocessing_dir():
    made = subprocess.run([sys.executable, "-c", KILLED], capture_output=True, text=True).stdout.strip()
    assert os.path.basename(made).startswith("pymp-") and os.path.isdir(made)
    with open(os.environ["MADE"], "a") as f:
        f.write(made + "\\n")


def test_a_leak():
    import tempfile

    fd, path = tempfile.mkstemp(prefix="leaked-")
    os.close(fd)
"""


def test_killed_childrens_multiprocessing_dirs_go_and_a_leak_is_named(tmp_path):
    (tmp_path / "test_generated.py").write_text(GENERATED)
    temp = tmp_path / "temp"
    temp.mkdir()
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugins named: quicker start-up
    env["TMPDIR"] = str(temp)
    env["MADE"] = str(tmp_path / "made")
    plugins = ["-p", "xdist", "-p", "session_tmpdir", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n2", "-q", *plugins, "test_generated.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (made,) = (tmp_path / "made").read_text().split()
    (session,) = [name for name in os.listdir(temp) if name.startswith("kvb-tests-tmp-")]
    assert os.path.dirname(made) == str(temp / session)  # the worker's child had the session's TMPDIR
    assert not os.path.exists(made)
    (leaked,) = os.listdir(temp / session)
    assert leaked.startswith("leaked-")
    assert f"in {temp / session}: {leaked}" in done.stderr
