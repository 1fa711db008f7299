"""A plain install (the wheel, no extras, in a fresh virtualenv) runs every way in."""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT


def _pty_session(cmd, keys, wait_for, timeout=60):
    """Run ``cmd`` on a pseudo-terminal, type ``keys`` once the prompt shows, return the screen."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out, sent, end = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and b"ray[" in out:
                os.write(master, keys)
                sent = True
            if sent and wait_for in out and proc.poll() is not None:
                break
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, out.decode("utf-8", "replace")


@pytest.mark.external
def test_the_wheel_without_extras_runs_every_way_in(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    venv = tmp_path / "venv"
    # no pip of its own (ensurepip is most of a venv's making): the suite's pip installs into it,
    # without compiling every module of numpy ahead (what is imported compiles as it is)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (wheel,) = wheels.glob("rayscript-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-compile", str(wheel)], check=True, capture_output=True, timeout=600)
    bin_ = venv / "bin"
    run = subprocess.run([str(bin_ / "rayscript"), "run", "--ranks", "2", "-e", "put kmers/1 on 1; locate kmers/1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "kmers/1 is on rank 1" in run.stdout, run.stderr
    script = tmp_path / "s.ray"
    script.write_text("copy kmers/1 from 0 to 1\n")
    check = subprocess.run([str(bin_ / "rayscript"), "check", str(script), "--ranks", "2"], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0 and "ok (1 statement)" in check.stdout, check.stderr
    api = subprocess.run([str(bin_ / "python"), "-c", "from rayscript import Cluster\n"
                          "with Cluster.local(2) as c: print(c.run('ranks')[0].data[1]['rank'])"],
                         capture_output=True, text=True, timeout=120)
    assert api.returncode == 0 and api.stdout == "1\n", api.stderr
    # without the 'plot' extra: a picture is one sentence naming the extra, and the numbers still come
    drawn = subprocess.run([str(bin_ / "rayscript"), "run", "--ranks", "2", "-e",
                            f'put kmers/AAAAA count=4 on 1; histogram kmers to "{tmp_path}/s.png"'],
                           capture_output=True, text=True, timeout=120)
    assert drawn.returncode == 0 and "Traceback" not in drawn.stderr, drawn.stderr
    assert f"could not draw {tmp_path}/s.png: drawing needs matplotlib, which comes with the extra " \
           "rayscript[plot]" in drawn.stdout and "no model: " in drawn.stdout, drawn.stdout
    # under mpiexec without the 'mpi' extra: a sentence, not a traceback
    mpi = subprocess.run([str(Path(sys.executable).parent / "mpiexec"), "-n", "2", str(bin_ / "rayscript"), "run",
                          "-e", "ranks"], capture_output=True, text=True, timeout=120)
    assert "mpi4py is not installed: pip install 'rayscript[mpi]'" in mpi.stderr and "Traceback" not in mpi.stderr
    code, screen = _pty_session([str(bin_ / "rayscript"), "repl", "--ranks", "2"], b"ranks\r\x04", b"bytes")
    assert "rank" in screen and "bytes" in screen and "Traceback" not in screen, screen
    assert code == 0, screen
