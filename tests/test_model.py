"""Nothing lost, nothing duplicated: the store against a dictionary model, on both backends."""

import os

import pytest
from hypothesis import Phase, settings

from conftest import BIN, ROOT, run_mpi
from rayscript import Cluster
from support.model import StoreModel, encode_check


class LocalModel(StoreModel):
    def make_cluster(self, size):
        return Cluster.local(size)


# (no explain phase: it traces every line, which took a failing run past the test timeout and hid
# the failure behind a FlakyStrategyDefinition)
LocalModel.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None,
                                        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
TestLocalModel = LocalModel.TestCase


def test_the_model_uses_canonical_kmers():
    encode_check()


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 5])  # the smallest job, and one whose partition is uneven
def test_model_under_mpiexec(ranks):
    path = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))  # tests/ first
    proc = run_mpi(ranks, str(BIN / "python"), "-m", "support.model", "8", "15", timeout=300,
                   env={"PYTHONPATH": path})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"MODEL OK on {ranks} ranks" in proc.stdout
