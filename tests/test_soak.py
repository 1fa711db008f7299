"""Soak: 100,000 random orders across 6 ranks under mpiexec, then the store is checked against a
model of every rank's items.  Marked slow: not in the default suite; run it with scripts/soak."""

import random

import pytest

from conftest import rayscript_cmd, run_mpi
from rayscript.store.partition import owner

RANKS = 6
KEYS = 400


def generate(n_orders: int, seed: int = 11):
    rng = random.Random(seed)
    model = {r: {} for r in range(RANKS)}
    lines = []
    for _ in range(n_orders):
        key = rng.randrange(1, KEYS + 1)
        holders = [r for r in range(RANKS) if key in model[r]]
        op = rng.random()
        if not holders or op < 0.25:
            r, count = rng.randrange(RANKS), rng.randrange(1, 9)
            lines.append(f"put kmers/{key} count={count} on {r}")
            model[r][key] = count
            continue
        a = rng.choice(holders)
        b = rng.choice([r for r in range(RANKS) if r != a])
        if op < 0.55:
            lines.append(f"copy kmers/{key} from {a} to {b} merge")
            model[b][key] = model[b].get(key, 0) + model[a][key]
        elif op < 0.85:
            lines.append(f"move kmers/{key} from {a} to {b} replace")
            model[b][key] = model[a].pop(key)
        else:
            lines.append(f"delete kmers/{key} from {a}")
            del model[a][key]
    checks, expected = [], []
    for key in range(1, KEYS + 1):
        holders = sorted((r for r in range(RANKS) if key in model[r]),
                         key=lambda r: (r != owner(("kmers", key), RANKS), r))
        checks.append(f"locate kmers/{key}")
        if holders:
            names = ", ".join(f"{r} (owner)" if r == owner(("kmers", key), RANKS) else str(r) for r in holders)
            expected.append(f"kmers/{key} is on rank{'s' if len(holders) > 1 else ''} {names}")
        else:
            expected.append(f"kmers/{key} is on no rank (its owner would be rank {owner(('kmers', key), RANKS)})")
        for r in holders:
            checks.append(f"get kmers/{key} from {r}")
            expected.append(f"kmers/{key} count={model[r][key]} edges=->-  (on rank {r})")
    return lines, checks, expected


@pytest.mark.slow
@pytest.mark.mpi
def test_soak_100000_orders_on_6_ranks(tmp_path):
    lines, checks, expected = generate(100_000)
    script = tmp_path / "soak.ray"
    script.write_text("\n".join(lines + checks) + "\n")
    proc = run_mpi(RANKS, *rayscript_cmd(), "run", str(script), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    assert len(out) == len(lines) + len(expected)  # one line per order, then the checks
    assert out[len(lines):] == expected
