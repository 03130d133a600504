"""reports/<file> never mixes runs (issue 25): publishing another run's file removes the earlier
run's top-level files first, and reports/RUN.json names the run."""
import json
from concurrent.futures import ThreadPoolExecutor

from bench.report.publish import STAMP, current_run, publish


def _run_folder(top, run, files):
    folder = top / run
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text(f"{run} {name}\n")
    return folder


def test_a_second_run_replaces_every_file_of_the_first(tmp_path):
    top = tmp_path / "reports"
    a = _run_folder(top, "a", ["table1.csv", "table2.csv", "report.html"])
    b = _run_folder(top, "b", ["table1.csv"])
    for name in ("table1.csv", "table2.csv", "report.html"):
        publish(a / name, top / name, "a")
    assert current_run(top)["files"] == ["report.html", "table1.csv", "table2.csv"]
    publish(b / "table1.csv", top / "table1.csv", "b")  # run b stops after one file (a failed run, say)
    assert (top / "table1.csv").read_text() == "b table1.csv\n"
    assert not (top / "table2.csv").exists() and not (top / "report.html").exists()
    assert json.loads((top / STAMP).read_text()) == {"run": "b", "folder": str(b), "files": ["table1.csv"]}
    assert (a / "table2.csv").exists()  # the run's own folder is never touched


def test_copies_from_before_the_stamp_are_removed_and_other_files_kept(tmp_path):
    top = tmp_path / "reports"
    old = _run_folder(top, "old", ["table3.csv"])
    (top / "table3.csv").write_text("old table3.csv\n")  # published before reports/RUN.json existed
    (top / "notes.txt").write_text("mine\n")  # a user's file with no namesake in any run folder
    (top / "README.md").write_text("mine\n")
    (old / "README.md").write_text("the run's\n")  # a namesake, but not a kind the publish rule writes
    new = _run_folder(top, "new", ["table1.csv"])
    publish(new / "table1.csv", top / "table1.csv", "new")
    assert not (top / "table3.csv").exists() and (top / "notes.txt").exists() and (old / "table3.csv").exists()
    assert (top / "README.md").read_text() == "mine\n"


def test_the_publish_jobs_of_one_run_side_by_side_keep_every_file(tmp_path):
    top = tmp_path / "reports"
    names = [f"table{i}.csv" for i in range(12)]
    run = _run_folder(top, "r", names)
    _run_folder(top, "q", ["table0.csv"])
    publish(top / "q" / "table0.csv", top / "table0.csv", "q")
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda n: publish(run / n, top / n, "r"), names))
    assert current_run(top)["files"] == sorted(names)
    assert all((top / n).read_text() == f"r {n}\n" for n in names)
