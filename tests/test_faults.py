"""Rank-side faults are located: a handler that fails answers with the line of rayscript's code where
it failed, and the rank logs its traceback when a log level is asked for (off by default)."""

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, rayscript_cmd
from rayscript import Cluster
from rayscript.errors import RayScriptError
from rayscript.runtime.shard import Shard


def _broken(self, namespace, ident):
    raise ZeroDivisionError("division by zero")


def test_a_handler_crash_names_rank_key_and_the_line_of_code(monkeypatch, caplog):
    monkeypatch.setattr(Shard, "packed", _broken)  # rank 1's get handler fails inside its shard
    with Cluster.local(2) as c, caplog.at_level(logging.ERROR, logger="rayscript"):
        c.run("put kmers/4 on 1")
        with pytest.raises(RayScriptError) as info:
            c.run("get kmers/4 from 1")
        cause = info.value.cause
        # the innermost frame of rayscript's own code (the test's function that raised is not ours)
        assert cause.rank == 1 and cause.key == "kmers/4"
        assert cause.where.startswith("rayscript/runtime/handlers.py:") and cause.where.endswith(" in _held")
        text = str(info.value)
        assert "rank 1, kmers/4: internal error on" in text and "ZeroDivisionError: division by zero" in text
        assert f"(at {cause.where})" in text
        assert c.run("locate kmers/4")[0].data["ranks"] == [1]
    (record,) = [r for r in caplog.records if r.name == "rayscript.rank.1"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "get-order" in record.getMessage() and cause.where in record.getMessage()


PROGRAM = textwrap.dedent("""
    from rayscript import Cluster
    from rayscript.runtime.shard import Shard

    def broken(self, namespace, ident):
        raise ZeroDivisionError("division by zero")

    Shard.packed = broken
    with Cluster.local(2) as c:
        c.run("put kmers/4 on 1")
        try:
            c.run("get kmers/4 from 1")
        except Exception as exc:
            print(exc)
""")


def _program(env_level):
    env = {k: v for k, v in os.environ.items() if k != "RAYSCRIPT_LOG"}
    if env_level:
        env["RAYSCRIPT_LOG"] = env_level
    return subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=60)


def test_rayscript_log_shows_the_rank_s_traceback_and_nothing_is_logged_by_default():
    logged = _program("debug")
    assert logged.returncode == 0, logged.stderr
    assert "(at rayscript/runtime/handlers.py:" in logged.stdout
    assert "rayscript.rank.1 ERROR: handling 'get-order' from rank 0" in logged.stderr
    assert "Traceback (most recent call last)" in logged.stderr
    assert 'in broken\nZeroDivisionError: division by zero' in logged.stderr
    quiet = _program(None)
    assert quiet.returncode == 0 and "(at rayscript/runtime/handlers.py:" in quiet.stdout
    assert quiet.stderr == ""


def test_log_level_on_the_command_line():
    cmd = [*rayscript_cmd(), "run", "--ranks", "2", "-e", "get kmers/4 from 1"]
    env = {k: v for k, v in os.environ.items() if k != "RAYSCRIPT_LOG"}
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert quiet.returncode != 0 and "rayscript.rank" not in quiet.stderr
    cmd[2:2] = ["--log-level", "debug"]
    logged = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert logged.returncode == quiet.returncode
    assert "rayscript.rank.1 DEBUG: 'get-order' from rank 0 failed: kmers/4 is not on rank 1" in logged.stderr
    bad = subprocess.run([*cmd[:2], "-e", "print 1", "--ranks", "1"], capture_output=True, text=True,
                         env={**env, "RAYSCRIPT_LOG": "loud"}, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "RAYSCRIPT_LOG" in bad.stderr and "not a log level" in bad.stderr
