"""Atomic writes and the clean-up of what killed runs left (``core/io/atomic``), on real files."""
from __future__ import annotations

import os

from glacierflow.core.io.atomic import (
    commit,
    remove_quietly,
    remove_stale_temporaries,
    stale_temporaries_in,
    temporary_path,
    write_text,
)


def _touch(path: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("x")
    return path


def test_a_killed_runs_leftovers_are_removed_but_a_temporary_in_use_is_not(tmp_path):
    output = str(tmp_path / "velocity.tif")
    killed = _touch(str(tmp_path / ".velocity.tif.0123abcd.gftmp.tif"))  # another process's, long gone
    in_use = _touch(temporary_path(output, ".uncorrected.tif"))  # this job's, still being read
    overview = _touch(in_use + ".ovr.tmp")  # GDAL's scratch beside it
    assert remove_stale_temporaries(output) == [killed]
    assert os.path.exists(in_use) and os.path.exists(overview) and not os.path.exists(killed)
    assert stale_temporaries_in(str(tmp_path)) == []
    remove_quietly(in_use)  # done with it: from now on a leftover like any other
    assert remove_stale_temporaries(output) == [overview]


def test_a_committed_temporary_is_no_longer_protected(tmp_path):
    output = str(tmp_path / "report.txt")
    temporary = _touch(temporary_path(output))
    commit(temporary, output)
    leftover = _touch(temporary)  # the same name written again later by a killed run
    assert remove_stale_temporaries(output) == [leftover]
    assert write_text(output, "done") == output and open(output, encoding="utf-8").read() == "done"
