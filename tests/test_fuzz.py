"""Fuzzing: the parser and the FASTQ reader either accept their input or give a located error,
never a Python traceback."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rayscript import Cluster
from rayscript.errors import RayScriptError, ScriptError, ScriptErrors
from rayscript.genomics import fastx
from rayscript.language.help import entries
from rayscript.statements import check, parse, parse_all

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [p.read_text() for p in sorted((ROOT / "examples").glob("*.ray"))] + [h[2] for h in entries().values()]
ALPHABET = st.sampled_from([*list('abcdefghijklmnopqrstuvwxyz0123456789 /$*{}:;=<>.,"#\n\t-_ACGT'), "\x00", "é"])


def _located(err):
    errors = err.errors if isinstance(err, ScriptErrors) else [err]
    for e in errors:
        assert isinstance(e, ScriptError)
        assert e.location is not None and e.location.line >= 1 and e.location.column >= 1, str(e)


def _parses_or_locates(text):
    try:
        statements = parse(text, "fuzz.ray")
        check(statements, 4, text)
    except ScriptError as err:
        _located(err)
    statements, errors = parse_all(text, "fuzz.ray")
    for e in errors:
        _located(e)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=120))
def test_random_text(text):
    _parses_or_locates(text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutations_of_every_example(example, data):
    text = example
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace", "swap"]))
        piece = data.draw(st.text(alphabet=ALPHABET, min_size=1, max_size=6))
        if kind == "insert":
            text = text[:i] + piece + text[i:]
        elif kind == "delete":
            text = text[:i] + text[i + len(piece):]
        elif kind == "replace":
            text = text[:i] + piece + text[i + len(piece):]
        else:
            j = data.draw(st.integers(0, len(text)))
            a, b = sorted((i, j))
            text = text[:a] + text[b:] + text[a:b]
    _parses_or_locates(text)


FASTQ_PIECES = st.sampled_from(["@r1\n", "ACGTN\n", "+\n", "IIIII\n", "@", "+", "\n", "AC", "II", ">s\n",
                                "\r\n", "acgt\n", "@r2 extra\n", "", "NNNN\n", "IIII\n"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(FASTQ_PIECES, max_size=30), ranks=st.integers(1, 3))
def test_fastq_input_is_read_or_refused_with_the_file_named(tmp_path_factory, pieces, ranks):
    path = tmp_path_factory.mktemp("fq") / "fuzz.fq"
    path.write_text("".join(pieces))
    try:
        source = fastx.inspect(str(path))
        for part in fastx.plan([source], ranks)[0]:
            list(fastx.read_part(part, 16))
    except fastx.InputError as err:
        assert str(err).startswith(str(path)), str(err)
    with Cluster.local(ranks) as c:
        try:
            c.run(f'load "{path}" into kmers k=3')
        except RayScriptError as err:
            assert str(path) in str(err), str(err)


def test_a_truncated_last_record_is_reported_however_the_file_is_split(tmp_path):
    """Whatever rank's byte range the broken record starts in or spans, and however the reader
    chunks it, some rank reports the truncation: the load never succeeds with a record missing."""
    import random

    rng = random.Random(2)
    records = []
    for i in range(12):
        n = rng.randint(20, 50)
        seq = "".join(rng.choice("ACGT") for _ in range(n))
        qual = "".join(rng.choice("@+ABI") for _ in range(n))  # qualities may start like headers
        records.append(f"@r{i}\n{seq}\n+\n{qual}\n")
    last = records[-1]
    path = tmp_path / "cut.fq"
    checked = 0
    for cut in range(1, len(last)):
        piece = last[:cut]
        lines = piece.split("\n")
        if piece.count("\n") == 4 or (piece.count("\n") == 3 and len(lines[3]) == len(lines[1])):
            continue  # a whole record (the final newline is optional)
        path.write_text("".join(records[:-1]) + piece)
        source = fastx.inspect(str(path))
        for ranks in range(1, 25):
            for chunk in (64, 1 << 20):
                reported = []
                for parts in fastx.plan([source], ranks):
                    for part in parts:
                        try:
                            for _ in fastx.read_part(part, chunk):
                                pass
                        except fastx.InputError as err:
                            reported.append(str(err))
                # "truncated FASTQ record ..." or, when only the quality line is cut short,
                # "record '@r11': quality length ... differs ...", always naming file and line
                assert reported, (cut, ranks, chunk)
                assert all(e.startswith(f"{path}:") for e in reported), reported
                checked += 1
    assert checked > 1000
