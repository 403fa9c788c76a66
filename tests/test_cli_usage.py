"""What a newcomer meets first: --help, --version, and commands that have nothing to work on."""
import subprocess
import sys
from importlib.metadata import version

from invertornot_ssg.cli import main


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invertornot_ssg.cli", *argv], capture_output=True, text=True)


def test_version_is_the_installed_packages():
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"invertornot-ssg {version('invertornot-ssg')}"


def test_top_level_help_is_for_users():
    proc = run("--help")
    assert proc.returncode == 0
    out = proc.stdout
    assert "which images of a static site to invert in dark mode" in out
    for command in ("classify", "retrain", "eval", "review", "apply"):
        assert f"invertornot-ssg {command}" in out  # an example of each
    assert "argparse" not in out and "main(argv)" not in out  # not the module's docstring


def test_apply_on_a_folder_without_html_fails_and_says_so(tmp_path, capsys):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.png").write_bytes(b"")
    assert main(["apply", "--store", str(tmp_path / "store"), str(tmp_path / "site")]) == 1
    assert f"nothing to apply: no .html files under {tmp_path / 'site'}" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_eval_on_a_list_without_images_fails_and_says_so(tmp_path, capsys):
    (tmp_path / "truth.csv").write_text("file,invert\n", encoding="utf-8")
    (tmp_path / "folder" / "invert").mkdir(parents=True)
    (tmp_path / "folder" / "keep").mkdir()
    for path in (tmp_path / "truth.csv", tmp_path / "folder"):
        assert main(["eval", "--store", str(tmp_path / "store"), str(path)]) == 1
        assert f"nothing to evaluate: {path} lists no image files" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_every_option_has_its_help_line():
    """The configuration reference (docs/hooks.py) is generated from Settings and OPTION_HELP."""
    from invertornot_ssg.settings import OPTION_HELP, option_names

    assert set(OPTION_HELP) == set(option_names())
    assert all(text.strip().endswith(".") for text in OPTION_HELP.values())
