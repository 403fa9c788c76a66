"""numpy and Pillow are imported on first use: not by importing the core or making an engine, and
safely from several threads."""
import subprocess
import sys

CODE = """
import sys, threading
import invertornot_ssg.engine, invertornot_ssg.pages, invertornot_ssg.sitedir
from invertornot_ssg.settings import Settings
engine = invertornot_ssg.engine.Engine(Settings(store=sys.argv[1], overrides="", background="#18181b"), sys.argv[1])
assert engine.background == (24, 24, 27)
assert 'numpy._core' not in sys.modules and 'numpy.core' not in sys.modules, 'numpy imported eagerly'
assert 'PIL.Image' not in sys.modules, 'Pillow imported eagerly'
from invertornot_ssg._lazy import np
start, results = threading.Barrier(8), []
def first_use():
    start.wait()  # eight threads touch numpy for the first time at once, as decode threads may
    results.append(float(np.linalg.norm(np.ones(4, dtype=np.float32))))
threads = [threading.Thread(target=first_use) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert results == [2.0] * 8, results
assert isinstance(np.zeros(1), np.ndarray) and np.__name__ == 'numpy'
"""


def test_numpy_and_pillow_are_imported_on_first_use_from_any_thread(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CODE, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
