"""atomic_write on real files: the name holds the old contents or all of the new, never part;
a failure or a killed process leaves the old file as it was."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from birdid_app.core.atomic import atomic_write


def test_writes_text_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "notes.txt"
    with atomic_write(path) as out:
        out.write("grüße\n")
    assert path.read_bytes() == "grüße\n".encode()  # UTF-8 whatever the locale says
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_writes_bytes(tmp_path):
    path = tmp_path / "data.bin"
    with atomic_write(path, "wb") as out:
        out.write(bytes(range(256)))
    assert path.read_bytes() == bytes(range(256))


def test_the_old_contents_stay_until_the_new_are_complete(tmp_path):
    path = tmp_path / "index.json"
    path.write_text("old")
    with atomic_write(path) as out:
        out.write("new, first half; ")
        out.flush()
        assert path.read_text() == "old"
        out.write("second half")
    assert path.read_text() == "new, first half; second half"
    assert os.listdir(tmp_path) == ["index.json"]


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="half way"), atomic_write(path) as out:
        out.write("new")
        raise RuntimeError("half way")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["settings.json"]


def test_a_new_file_is_not_left_behind_on_error(tmp_path):
    path = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt), atomic_write(path) as out:
        out.write("a,b\n")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_a_missing_folder_is_an_oserror_naming_the_file_asked_for(tmp_path):
    path = tmp_path / "no-such-folder" / "out.png"
    with pytest.raises(FileNotFoundError) as raised, atomic_write(path, "wb"):
        pass
    assert raised.value.filename == str(path)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_permissions_are_an_ordinary_files_and_a_replaced_file_keeps_its_own(tmp_path):
    ordinary = tmp_path / "ordinary"
    ordinary.write_text("x")
    path = tmp_path / "export.csv"
    with atomic_write(path) as out:
        out.write("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(ordinary.stat().st_mode)
    path.chmod(0o600)
    with atomic_write(path) as out:
        out.write("y")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_only_whole_file_modes(tmp_path):
    with pytest.raises(ValueError, match="not 'a'"), atomic_write(tmp_path / "x", "a"):
        pass
    assert os.listdir(tmp_path) == []


def test_a_process_killed_while_writing_leaves_the_old_file(tmp_path):
    path = tmp_path / "models.json"
    path.write_text("old")
    writer = textwrap.dedent(f"""
        import sys, time
        from birdid_app.core.atomic import atomic_write
        with atomic_write({str(path)!r}) as out:
            out.write("new " * 100_000)
            out.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "writing\n"
    finally:
        process.kill()
        process.communicate(timeout=30)
    assert path.read_text() == "old"
