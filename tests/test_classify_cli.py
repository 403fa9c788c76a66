"""`invertornot-ssg classify` end to end: real images, real store, real default embedder."""
import json
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw
from skimage import data

from invertornot_ssg.cli import main

pytestmark = pytest.mark.slow
KEYS = ["path", "sha1", "invert", "p_invert", "confidence", "method", "version", "cached", "error", "novelty", "novel"]


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg", quality=90)
    Image.fromarray(data.coffee()).save(folder / "sub" / "coffee.png")
    plot = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(plot)
    draw.line([(40, 260), (40, 20)], fill="black", width=2)
    draw.line([(40, 260), (380, 260)], fill="black", width=2)
    draw.line([(40 + 10 * i, 260 - 7 * i) for i in range(34)], fill=(30, 60, 200), width=2)
    plot.save(folder / "plot.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (folder / "notes.txt").write_text("not an image, and not an image suffix: skipped in folders")
    return folder


def run_json(capsys, *argv):
    assert main(["classify", "--json", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines]


def test_json_lines_then_all_cached(tmp_path, mixed_folder, capsys):
    store = tmp_path / "store"
    first = run_json(capsys, "--store", str(store), str(mixed_folder))
    assert [list(row) for row in first] == [KEYS] * 4
    by_name = {row["path"].rsplit("/", 1)[-1]: row for row in first}
    assert set(by_name) == {"astronaut.jpg", "coffee.png", "plot.png", "broken.png"}
    broken = by_name["broken.png"]
    assert broken["invert"] is None and broken["error"] and broken["method"] == "error"
    for name in ("astronaut.jpg", "coffee.png", "plot.png"):
        row = by_name[name]
        assert row["error"] is None and isinstance(row["invert"], bool) and row["cached"] is False
        assert row["version"].startswith("efficientnet-lite0.prep2+")
        assert len(row["sha1"]) == 40
    # Photos are never inverted, with or without a head.
    assert by_name["astronaut.jpg"]["invert"] is False
    assert by_name["coffee.png"]["invert"] is False

    second = run_json(capsys, "--store", str(store), str(mixed_folder))
    assert [r["cached"] for r in second if r["error"] is None] == [True] * 3
    assert [r["invert"] for r in second] == [r["invert"] for r in first]


def test_a_warm_run_loads_no_model_and_the_head_file_is_checked(tmp_path, mixed_folder, capsys):
    store = tmp_path / "store"
    first = run_json(capsys, "--store", str(store), str(mixed_folder))
    # Warm, in a fresh process: the head's version comes from its sidecar; no torch, no scikit-learn,
    # not even numpy (it sits in sys.modules, loaded on first use).
    code = (
        "import json, sys; from invertornot_ssg.cli import main\n"
        f"assert main(['classify', '--json', '--store', {str(store)!r}, {str(mixed_folder)!r}]) == 0\n"
        "heavy = [m for m in ('torch', 'sklearn', 'skops', 'faiss', 'timm', 'numpy._core') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    assert json.loads(lines[-1]) == {"heavy": []}
    warm = [json.loads(line) for line in lines[:-1]]
    assert [r["invert"] for r in warm] == [r["invert"] for r in first]
    assert all(r["cached"] for r in warm if r["error"] is None)

    # A head's version is its content: the shipped head copied elsewhere keeps its version, and a
    # changed file under the old sidecar is refused rather than passed off as that version.
    import shutil

    from invertornot_ssg import shipped
    from invertornot_ssg.embedders import embedder_id

    from invertornot_ssg.novelty import novelty_path

    head = tmp_path / "other-head.skops"
    shipped_head = shipped.default_head_path(embedder_id("efficientnet-lite0"))
    for source, copy in ((shipped_head, head), (novelty_path(shipped_head), novelty_path(head))):  # with its novelty model
        shutil.copy(source, copy)
        shutil.copy(source.with_suffix(".json"), copy.with_suffix(".json"))
    again = run_json(capsys, "--store", str(store), "--head", str(head), str(mixed_folder))
    assert [r["version"] for r in again] == [r["version"] for r in first]  # same bytes, same version
    head.write_bytes(head.read_bytes() + b"\0")  # a different file under the old sidecar: refused
    assert main(["classify", "--store", str(store), "--head", str(head), str(mixed_folder)]) != 0
    assert "does not match its sidecar" in capsys.readouterr().err


def test_table_and_summary(tmp_path, mixed_folder, capsys):
    assert main(["classify", "--store", str(tmp_path / "s"), str(mixed_folder / "plot.png"),
                 str(mixed_folder / "broken.png")]) == 0
    out = capsys.readouterr().out
    assert "plot.png" in out and "broken.png" in out
    assert out.strip().splitlines()[-1].startswith("2 images:")
    assert "1 errors" in out


def test_usage_error_exits_nonzero():
    proc = subprocess.run([sys.executable, "-m", "invertornot_ssg.cli", "classify"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "PATH" in proc.stderr


def test_a_missing_path_is_named_and_fails_and_nothing_to_classify_fails(tmp_path, mixed_folder, capsys):
    store = str(tmp_path / "s")
    # The rest is still classified; the exit status says something was not there.
    assert main(["classify", "--json", "--store", store, str(tmp_path / "nope.png"), str(mixed_folder / "plot.png")]) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / 'nope.png'}: no such file or folder" in captured.err
    assert [json.loads(line)["path"] for line in captured.out.splitlines()] == [str(mixed_folder / "plot.png")]
    # Nothing at all to work on: a clear message, exit 1, and no store created.
    (tmp_path / "empty").mkdir()
    for paths in (["/nonexistent"], [str(tmp_path / "empty")]):
        assert main(["classify", "--store", str(tmp_path / "s2"), *paths]) == 1
        err = capsys.readouterr().err
        assert "nothing to classify: no image files in " + paths[0] in err
    assert not (tmp_path / "s2").exists()


def test_in_a_sites_folder_it_uses_the_sites_labels_and_head_and_says_so(tmp_path, mixed_folder, capsys, monkeypatch):
    """Run where invertornot.yml is, classify decides as the build does (same labels, same head)."""
    from invertornot_ssg.overrides import record_decisions

    monkeypatch.chdir(tmp_path)
    record_decisions(tmp_path / "invertornot.yml", {}, labels={"images/plot.png": "keep"})
    assert main(["classify", "--json", "images/plot.png"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["method"] == "override"
    assert f"labels {tmp_path / 'invertornot.yml'}; head " in captured.err
    assert f"store {tmp_path / '.invertornot'} (new)" in captured.err
    # --overrides '' ignores it.
    assert main(["classify", "--json", "--overrides", "", "images/plot.png"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["method"] != "override" and "labels none" in captured.err
