"""Robustness of the command line: runs started together, concurrent sweeps, a killed run,
Ctrl-C, and output locations or stores that cannot be written.

Each scenario runs `python run.py ...` in subprocesses inside tmp_path and reads the results back
from the output directories and MLflow.

Unwritable paths: root ignores file permissions, so when the tests run as root a path is made
unwritable by putting it under a regular FILE (``<tmp>/file.txt/sub``: creating it fails with
"Not a directory"); otherwise a directory is made read-only (chmod 0o555).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import RUN_PY, mlflow_client, run_cli

pytestmark = pytest.mark.e2e
LINUX = sys.platform.startswith("linux")  # /proc: process start times, a process's children

# Reference models in the thousands: a run that takes long enough to be killed mid-way.
SLOW = ["attack=lira", "reference.n_models=4096", "reference.cache=false"]


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_"))}


def _start(args, cwd: Path, name: str, **kwargs) -> subprocess.Popen:
    """`python run.py <args>` in the background, stdout and stderr to <name>.out / <name>.err in cwd."""
    return subprocess.Popen([sys.executable, str(RUN_PY), *args], cwd=cwd, env=_env(),
                            stdout=(cwd / f"{name}.out").open("w"), stderr=(cwd / f"{name}.err").open("w"), **kwargs)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """A launch directory (and so an embedded store) shared by the slow-run tests: creating a
    store costs seconds. Each test finds its own runs by id."""
    return tmp_path_factory.mktemp("shared")


def _runs(uri: str):
    client = mlflow_client(uri)
    exp = client.get_experiment_by_name("mia-engine")
    return client, (client.search_runs([exp.experiment_id], max_results=1000) if exp else [])


def _statuses(db: Path) -> dict[str, str]:
    """run id -> status, read with sqlite3 (no MLflow import while polling)."""
    if not db.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return dict(con.execute("select run_uuid, status from runs"))
        finally:
            con.close()
    except sqlite3.Error:  # the schema is still being created
        return {}


def _wait_for_running_runs(proc: subprocess.Popen, db: Path, n: int = 1, timeout: float = 60) -> list[str]:
    """The ids of the ``n`` runs ``proc`` opens (runs that were not in the store before)."""
    before = set(_statuses(db))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r, s in _statuses(db).items() if s == "RUNNING" and r not in before]
        if len(running) >= n:
            return running
        assert proc.poll() is None, f"the run ended early: {proc.returncode}"
        time.sleep(0.2)
    raise AssertionError("no run was opened")


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def _unwritable(tmp_path: Path) -> Path:
    """A directory path nothing can be written under (see the module docstring)."""
    if os.geteuid() == 0:
        blocker = tmp_path / "file.txt"
        blocker.write_text("a regular file, not a directory\n")
        return blocker / "sub"
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    return ro / "sub"


def test_eight_runs_started_together_each_get_their_own_outputs_and_run(tmp_path):
    procs = {i: subprocess.Popen([sys.executable, str(RUN_PY), f"model.gamma=0.{i}", f"tracking.run_name=c{i}"],
                                 cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(1, 9)}
    results = {i: p.communicate(timeout=240) for i, p in procs.items()}
    for i, p in procs.items():
        assert p.returncode == 0, results[i][1]
    out_dirs = sorted({p.parent for p in (tmp_path / "outputs").glob("*/*/summary.json")})
    assert len(out_dirs) == 8
    assert all(re.fullmatch(r"\d{2}-\d{2}-\d{2}-\d{6}-p\d+", d.name) for d in out_dirs), out_dirs

    client, runs = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 8
    assert sorted(r.info.run_name for r in runs) == [f"c{i}" for i in range(1, 9)]
    for run in runs:
        out = Path(run.data.tags["mia.output_dir"])
        assert out in out_dirs
        gamma = yaml.safe_load((out / "resolved_config.yaml").read_text())["model"]["gamma"]
        assert float(run.data.params["model.gamma"]) == pytest.approx(float(gamma))
        assert float(gamma) == pytest.approx(float(f"0.{run.info.run_name[1:]}"))
        assert json.loads((out / "summary.json").read_text())["mlflow"]["run_id"] == run.info.run_id
        # The log on disk and the one logged as the run's artifact name this run only.
        logged = Path(client.download_artifacts(run.info.run_id, "logs/run.log", str(tmp_path / run.info.run_id)))
        for text in ((out / "run.log").read_text(), logged.read_text()):
            assert set(re.findall(r"\bc[1-8]\b", text)) == {run.info.run_name}
        assert {"mia.pid", "mia.host", *(["mia.pid_start"] if LINUX else [])} <= set(run.data.tags)
        assert run.data.tags["mia.host"] == socket.gethostname()


def test_concurrent_sweeps_keep_their_own_children_and_a_failed_job_fails_the_command(tmp_path):
    # Four sweeps in one directory (one store), started together. The third has a failing job;
    # the fourth's job records its run in another store, so its parent ends with no child.
    other = tmp_path / "other.db"
    grids = (["model.gamma=0.1,3"], ["model.gamma=0.3,1"], ["data.classes.responders.features.age.mu=72,-1"],
             ["model.gamma=10", f"+hydra.job.env_set.MLFLOW_TRACKING_URI=sqlite:///{other}"])
    procs = [subprocess.Popen([sys.executable, str(RUN_PY), "-m", *grid], cwd=tmp_path, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for grid in grids]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs[:2]] == [0, 0], [o[1] for o in outs]
    # The failing sweep: the command fails, naming the key.
    assert procs[2].returncode == 2
    assert outs[2][1].strip().splitlines()[-1].startswith("error: data.classes.responders.features.age.mu: ")
    # A parent that ends FAILED fails the command too, in one line.
    assert procs[3].returncode == 1
    lines = outs[3][1].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sweep: no job run was recorded under it; parent run ")

    client, runs = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("mia.role") == "sweep"}
    assert len(parents) == 4
    children: dict[str, dict[str, str]] = {pid: {} for pid in parents}
    for r in runs:
        if "mlflow.parentRunId" in r.data.tags:
            children[r.data.tags["mlflow.parentRunId"]][r.info.run_name] = r.info.status
    by_name = {parents[pid].info.run_name: (parents[pid].info.status, jobs) for pid, jobs in children.items()}
    assert by_name == {
        "sweep model.gamma=0.1,3": ("FINISHED", {"model.gamma=0.1": "FINISHED", "model.gamma=3": "FINISHED"}),
        "sweep model.gamma=0.3,1": ("FINISHED", {"model.gamma=0.3": "FINISHED", "model.gamma=1": "FINISHED"}),
        "sweep data.classes.responders.features.age.mu=72,-1": (
            "FAILED", {"data.classes.responders.features.age.mu=72": "FINISHED"}),
        "sweep model.gamma=10": ("FAILED", {}),
    }
    sweep_dirs = {p.data.tags["mia.sweep_dir"] for p in parents.values()}
    assert len(sweep_dirs) == 4
    for pid, parent in parents.items():
        assert json.loads((Path(parent.data.tags["mia.sweep_dir"]) / "mlflow_parent_run.json").read_text())[
            "run_id"] == pid


def test_a_sweep_directory_in_use_is_refused_and_ctrl_c_stops_the_sweep(shared):
    sweep_dir = shared / "in-use-sweep"
    db = shared / "mlflow.db"
    first = _start(["-m", *SLOW, f"hydra.sweep.dir={sweep_dir}", "model.gamma=1,3"], shared, "sweep",
                   start_new_session=True)
    try:
        opened = _wait_for_running_runs(first, db, n=2)  # the sweep's parent and its first job
        second = run_cli(["-m", f"hydra.sweep.dir={sweep_dir}", "model.gamma=0.1"], cwd=shared, timeout=120)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: hydra.sweep.dir: ") and "in use" in lines[0], lines
    finally:
        os.killpg(first.pid, signal.SIGINT)  # Ctrl-C
        first.wait(timeout=60)
    assert first.returncode == 130
    stderr = (shared / "sweep.err").read_text()
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    parent = json.loads((sweep_dir / "mlflow_parent_run.json").read_text())["run_id"]
    assert parent in opened
    job = next(r for r in opened if r != parent)
    assert last.startswith("interrupted: runs ") and job in last and parent in last, last
    assert last.endswith(f"closed as FAILED; outputs so far in {sweep_dir}")
    status = _statuses(db)
    assert status[job] == status[parent] == "FAILED"


@pytest.mark.skipif(not LINUX, reason="finds the helper process through /proc")
def test_killed_run_takes_its_helper_along_and_the_next_run_closes_stale_runs(shared):
    from mia_engine.tracking import process_start

    db = shared / "mlflow.db"
    proc = _start([*SLOW, "tracking.background=true"], shared, "killed")
    [killed_run] = _wait_for_running_runs(proc, db)
    helpers = _children(proc.pid)
    assert helpers, "expected the forked MLflow helper"
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(h) for h in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(h) for h in helpers), "the helper outlived the killed run"

    # Runs left RUNNING by processes that are gone (as after kill -9 without a helper), next
    # to one whose process lives (this one), one whose pid was reused, and others'.
    uri = f"sqlite:///{db}"
    client = mlflow_client(uri)
    exp_id = client.get_experiment_by_name("mia-engine").experiment_id
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host, me = socket.gethostname(), str(os.getpid())
    owners = {"dead": {"mia.host": host, "mia.pid": gone.stdout.strip()},
              "reused": {"mia.host": host, "mia.pid": me, "mia.pid_start": "another-boot:0"},
              "alive": {"mia.host": host, "mia.pid": me, "mia.pid_start": process_start(os.getpid())},
              "elsewhere": {"mia.host": host + "-other", "mia.pid": gone.stdout.strip()},
              "container": {"mia.host": host, "mia.pid": gone.stdout.strip(), "mia.pid_ns": "pid:[1]"}}
    stale = {name: client.create_run(exp_id, run_name=name, tags=tags).info.run_id for name, tags in owners.items()}

    nxt = run_cli([], cwd=shared)
    assert nxt.returncode == 0, nxt.stderr
    status = {name: client.get_run(rid) for name, rid in stale.items()}
    assert status["dead"].info.status == "FAILED" and status["reused"].info.status == "FAILED"
    assert status["dead"].data.tags["mia.closed_reason"] == "process gone"
    # Another host's runs, and runs of another pid namespace (a container), are not judged here.
    assert {status[n].info.status for n in ("alive", "elsewhere", "container")} == {"RUNNING"}
    killed = client.get_run(killed_run)
    assert killed.info.status == "FAILED" and killed.data.tags["mia.closed_reason"] == "process gone"
    assert re.search(r"closed (2|3) run\(s\) left RUNNING by processes that are gone", nxt.stdout)
    for name in ("alive", "elsewhere", "container"):
        client.set_terminated(stale[name], "KILLED")


def test_ctrl_c_is_one_line_exit_130_and_the_run_failed(shared):
    db = shared / "mlflow.db"
    # Its own session, so the signal goes to the whole process group as Ctrl-C does.
    proc = _start(SLOW, shared, "ctrl_c", start_new_session=True)
    [run_id] = _wait_for_running_runs(proc, db)
    deadline = time.monotonic() + 60
    while "training" not in (shared / "ctrl_c.out").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert time.monotonic() - sent < 5
    stderr = (shared / "ctrl_c.err").read_text()
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and run_id in last and "closed as FAILED" in last
    assert "outputs so far in " in last
    assert _statuses(db)[run_id] == "FAILED"


def test_unwritable_sweep_dir_and_sqlite_store_are_one_line_and_fast(tmp_path):
    bad = _unwritable(tmp_path)
    start = time.monotonic()
    proc = run_cli(["-m", f"hydra.sweep.dir={bad}", "model.gamma=0.1,3"], cwd=tmp_path)
    assert time.monotonic() - start < 15
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hydra.sweep.dir: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "RUNNING" not in _statuses(tmp_path / "mlflow.db").values()

    start = time.monotonic()
    proc = run_cli([f"tracking.uri=sqlite:///{bad / 'mlflow.db'}"], cwd=tmp_path)
    assert time.monotonic() - start < 15
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tracking.uri: ") and str(bad) in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    # The scenario's outputs are on disk all the same.
    assert len(list((tmp_path / "outputs").glob("*/*/summary.json"))) == 1


def test_store_checks_need_no_mlflow(tmp_path, monkeypatch):
    """In-process: a read-only store directory or file is refused before MLflow is touched."""
    from mia_engine.errors import TrackingError
    from mia_engine.tracking import check_store_writable

    db = tmp_path / "store" / "mlflow.db"
    check_store_writable(f"sqlite:///{db}")  # created: the directory is made
    assert db.parent.is_dir()
    db.write_bytes(b"")
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != db.parent)
    with pytest.raises(TrackingError, match=r"^tracking\.uri: .* its directory .* is not writable$"):
        check_store_writable(f"sqlite:///{db}")
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != db)
    with pytest.raises(TrackingError, match=r"^tracking\.uri: .* the file is read-only$"):
        check_store_writable(f"sqlite:///{db}")
    check_store_writable("http://127.0.0.1:5000")  # only SQLite stores are checked
    check_store_writable("sqlite:///:memory:")


_SIGTERM_IN_A_CALLBACK = """
import os, signal, weakref
from mia_engine import tracking
tracking._helper_idle = True  # as in the helper before its first request
signal.signal(signal.SIGTERM, tracking._on_sigterm)
class Lock: pass
lock = Lock()
def callback(_):  # like importlib's module-lock callback, where CI's stray traceback came from
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10**6):
        pass  # the handler runs here, inside the callback
ref = weakref.ref(lock, callback)
del lock
print("still running")
"""


def test_a_helper_stopped_before_its_first_request_exits_silently(tmp_path):
    """A job that fails before opening a run stops its MLflow helper with SIGTERM, maybe while
    the helper still imports MLflow. A signal handled inside a callback cannot raise (Python only
    prints the exception onto the job's stderr): the idle helper exits at once instead."""
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_IN_A_CALLBACK], capture_output=True,
                          text=True, timeout=60, env=_env())
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")

    # The real thing: sessions stopped while their helper warms up leave nothing on stderr.
    script = ("import sys, time; from pathlib import Path; from mia_engine.tracking import TrackingSession\n"
              "for delay in (0.0, 0.05, 0.2, 0.5):\n"
              "    s = TrackingSession({'uri': sys.argv[1]}, Path('.'), 'r', {}, None)\n"
              "    assert s.background\n"
              "    time.sleep(delay); s.abandon()\n")
    proc = subprocess.run([sys.executable, "-c", script, f"sqlite:///{tmp_path / 'mlflow.db'}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_env())
    assert (proc.returncode, proc.stderr) == (0, "")


def test_ctrl_c_during_a_long_fit_stops_at_once(tmp_path):
    # libsvm with C=1e20 and a raised bound computes for minutes inside one call; the fit runs
    # off the main thread, so Ctrl-C is felt within a second all the same.
    proc = subprocess.Popen([sys.executable, str(RUN_PY), "tracking=none", "model.C=1e20", "model.max_iter=100000000",
                             f"hydra.run.dir={tmp_path / 'o'}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(6)  # composing and drawing take about 2 s; the fit then runs for minutes
    assert proc.poll() is None
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - sent < 5
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted")
