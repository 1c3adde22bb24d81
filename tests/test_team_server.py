"""A team tracking server for real: `mlflow server` on PostgreSQL with proxied artifacts, and a
16-job sweep on the Ray launcher logging to it at once (`tracking=server`).

The module starts its own PostgreSQL cluster (Debian's layout, /usr/lib/postgresql/<version>/bin;
.ci/run installs it where it is missing) in a temporary directory on a free port, a database in
it, and `mlflow server --artifacts-destination <temp dir>` against that database, then tears all
of it down. Without PostgreSQL binaries the module is skipped.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import artifact_paths, mlflow_client, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DB_USER, DB_PASSWORD, DB_NAME = "mlflow", "mia-test-password", "mlflow"
PG_USER = "postgres"  # Debian's package creates it; initdb refuses to run as root
# 16 distinct values of the swept key: one job each.
GAMMAS = ["0.01", "0.02", "0.05", "0.1", "0.2", "0.3", "0.5", "1", "2", "3", "5", "10", "20", "30", "50", "100"]
START_TIMEOUT = 120.0  # seconds for PostgreSQL, then the MLflow server, to answer


def _pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries in Debian's layout, else initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parent.parent.name)] or [0])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


PG_BIN = _pg_bin()
if PG_BIN is None or not all((PG_BIN / b).exists() for b in ("initdb", "postgres")):
    pytest.skip("PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or on PATH; "
                "`apt-get install postgresql-15` (.ci/run installs it)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path.name})"
    return "\n".join(lines[-n:])


@dataclass
class TeamServer:
    """The running PostgreSQL cluster and MLflow server, with their logs."""

    root: Path                      # PostgreSQL's cluster, socket and log (owned by PG_USER when root)
    server_dir: Path                # the MLflow server's working directory and log
    artifacts: Path                 # its --artifacts-destination
    pg_port: int = 0
    port: int = 0
    procs: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # e.g. the sweep's stderr, for diagnostics

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def diagnostics(self) -> str:
        parts = [f"timings: {self.timings}"]
        for name, path in (("postgres.log", self.root / "postgres.log"),
                           ("mlflow-server.log", self.server_dir / "mlflow-server.log")):
            parts.append(f"--- {name} (last lines)\n{_tail(path)}")
        return "\n".join(parts + self.notes)


def _as_pg_user() -> dict:
    """Popen arguments that run a child as PG_USER (only when we are root)."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(PG_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _pg_owner() -> pwd.struct_passwd | None:
    """The unprivileged user PostgreSQL runs as when we are root (created if the package did not)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True)
        return pwd.getpwnam(PG_USER)


def _wait(check, proc: subprocess.Popen, what: str, server: TeamServer, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before answering\n{server.diagnostics()}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:.0f} s\n{server.diagnostics()}")
        time.sleep(0.1)


def _stop(procs: list, timeout: float = 15.0) -> None:
    """Signal children started in their own sessions (each a process group: the MLflow server
    and its uvicorn worker, PostgreSQL and its backends) all at once, wait for them, then kill
    what is left of each group."""
    for proc, sig in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc, _ in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=timeout)


def _start_postgres(server: TeamServer) -> None:
    import psycopg2

    t0 = time.monotonic()
    owner = _pg_owner()
    if owner is not None:
        os.chown(server.root, owner.pw_uid, owner.pw_gid)
    pwfile = server.root / "superuser.pw"
    pwfile.write_text("superuser-test-password\n")
    if owner is not None:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    data, sock = server.root / "data", server.root / "sock"
    initdb = subprocess.run(
        [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
        cwd=server.root, capture_output=True, text=True, timeout=120, **_as_pg_user())
    if initdb.returncode != 0:
        raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
    sock.mkdir()
    if owner is not None:
        os.chown(sock, owner.pw_uid, owner.pw_gid)
    server.timings["initdb_s"] = round(time.monotonic() - t0, 2)

    server.pg_port = _free_port()
    log = open(server.root / "postgres.log", "wb")
    # A throw-away cluster: no durability needed, so no fsync.
    proc = subprocess.Popen(
        [str(PG_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(server.pg_port), "-k", str(sock),
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        cwd=server.root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        **_as_pg_user())
    log.close()
    server.procs.append((proc, signal.SIGINT))  # SIGINT: PostgreSQL's fast shutdown

    def superuser():
        return psycopg2.connect(host="127.0.0.1", port=server.pg_port, user="postgres",
                                password="superuser-test-password", dbname="postgres", connect_timeout=2)

    _wait(lambda: superuser().close() or True, proc, "postgres", server)
    # The README's recipe: a login role of its own owning the database (PostgreSQL 15 lets only
    # the database's owner create tables in its public schema).
    conn = superuser()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER {DB_USER} WITH PASSWORD %s", (DB_PASSWORD,))
        cur.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
    conn.close()
    server.timings["postgres_s"] = round(time.monotonic() - t0, 2)


def _start_mlflow(server: TeamServer) -> None:
    t0 = time.monotonic()
    server.port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # MLflow 3's server also starts a job runner with seven Huey consumer processes (GenAI jobs);
    # the engine uses none of them and they triple its start-up time on two cores.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    backend = f"postgresql+psycopg2://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{server.pg_port}/{DB_NAME}"
    log = open(server.server_dir / "mlflow-server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(server.artifacts), "--host", "127.0.0.1", "--port", str(server.port),
         "--workers", "1"],
        cwd=server.server_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    log.close()
    server.procs.append((proc, signal.SIGTERM))

    def healthy():
        with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as r:
            return r.status == 200

    _wait(healthy, proc, "mlflow server", server)
    server.timings["mlflow_server_s"] = round(time.monotonic() - t0, 2)


@pytest.fixture(scope="module")
def team_server():
    """PostgreSQL on a free port of 127.0.0.1 (its socket in the temp dir) with a database, and
    `mlflow server` on it with proxied artifacts; everything stopped and removed afterwards."""
    dirs = [Path(tempfile.mkdtemp(prefix="mia-pg-")), Path(tempfile.mkdtemp(prefix="mia-mlflow-"))]
    server = TeamServer(root=dirs[0], server_dir=dirs[1], artifacts=dirs[1] / "artifacts")
    server.artifacts.mkdir()
    try:
        _start_postgres(server)
        _start_mlflow(server)
        yield server
    finally:
        _stop(server.procs)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def test_sixteen_ray_jobs_log_to_a_postgres_server_with_proxied_artifacts(team_server, tmp_path, monkeypatch):
    from mlflow.entities import ViewType

    from mia_engine.tracking import _param_value, flatten

    server = team_server
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # the launcher starts its own Ray, whatever the shell has
    try:
        with tempfile.TemporaryDirectory(prefix="mia-ray-", ignore_cleanup_errors=True) as ray_tmp:  # Ray's socket paths: keep it short
            env = {"RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                   "HOME": str(tmp_path / "home"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
            t0 = time.monotonic()
            proc = run_cli(["-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.include_dashboard=false",
                            f"model.gamma={','.join(GAMMAS)}", "tracking=server", f"tracking.uri={server.uri}",
                            "report.enabled=false", "audit=none",
                            # each job's reference models go to the launcher's own Ray as tasks
                            "attack=[shadow_lr,rmia_offline]", "reference.backend=ray", "reference.n_models=4"],
                           cwd=tmp_path, env=env, timeout=400)
            server.timings["sweep_s"] = round(time.monotonic() - t0, 2)
            server.notes += [f"--- sweep stdout (last 3000 characters)\n{proc.stdout[-3000:]}",
                             f"--- sweep stderr (last 3000 characters)\n{proc.stderr[-3000:]}"]
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert any(Path(ray_tmp).rglob("session_*")), "Ray's session files belong under RAY_TMPDIR"
        home_ray = tmp_path / "home" / ".ray"  # RAY_AUTH_MODE=disabled: no token written to ~/.ray
        assert not home_ray.exists() or not any(home_ray.iterdir())

        t0 = time.monotonic()
        client = mlflow_client(server.uri)
        exp = client.get_experiment_by_name("mia-engine")
        # Artifacts are proxied: the experiment's root is the server's, not a path on this machine.
        assert exp.artifact_location.startswith("mlflow-artifacts:")
        runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=1000)
        parents = [r for r in runs if r.data.tags.get("mia.role") == "sweep"]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
        assert len(runs) == 17 and len(parents) == 1 and len(children) == 16, \
            [(r.info.run_name, r.info.status) for r in runs]
        parent = parents[0]
        assert [r.info.status for r in runs] == ["FINISHED"] * 17
        assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
        assert parent.data.metrics["sweep/n_jobs"] == 16 and parent.data.metrics["sweep/n_failed"] == 0
        # Every swept value once: none lost, none duplicated.
        assert sorted(float(c.data.params["model.gamma"]) for c in children) == sorted(map(float, GAMMAS))
        assert sorted(int(c.data.tags["mia.job_num"]) for c in children) == list(range(16))
        # The tutorial's number at gamma=3, as the embedded store gives it.
        by_gamma = {c.data.params["model.gamma"]: c for c in children}
        assert round(by_gamma["3.0"].data.metrics["target_record/attacks/shadow_lr/score"], 2) == 0.80
        # The jobs' fits joined the launcher's Ray runtime: no job started a Ray of its own.
        logs = sorted(tmp_path.glob("multirun/*/*/*/run.log"))
        assert len(logs) == 16
        for log in logs:
            text = log.read_text()
            assert "ray: using this process's Ray runtime" in text and "started a local instance" not in text, text
            assert "training 4 reference models on 2 workers (ray)" in text, text

        # Each job's outputs on disk match its run on the server, one to one.
        job_dirs = sorted(tmp_path.glob("multirun/*/*/*/summary.json"))
        assert len(job_dirs) == 16
        by_run = {json.loads(p.read_text())["mlflow"]["run_id"]: p.parent for p in job_dirs}
        assert set(by_run) == {c.info.run_id for c in children}
        dest = server.artifacts / exp.experiment_id
        downloads = tmp_path / "downloads"

        # Every job logs the same files: the whole tree listed through the server for one job
        # (each level is a request), the top level for the others, the files on the server's disk for all.
        files = artifact_paths(client, children[0].info.run_id)
        assert {"summary.json", "config/resolved_config.yaml", "logs/run.log", "models/target_model.joblib",
                "data/target_train.csv", "plots/shadow_confidence_histogram.png"} <= files, files
        top_level = {f.split("/")[0] for f in files}

        def check_job(c):
            rid, job = c.info.run_id, by_run[c.info.run_id]
            assert c.info.artifact_uri == f"mlflow-artifacts:/{exp.experiment_id}/{rid}/artifacts"
            # Params intact: every one is the job's own resolved config value (about 150 of them).
            local_config = (job / "resolved_config.yaml").read_text()
            resolved = yaml.safe_load(local_config)
            expected = {k: _param_value(v) for k, v in flatten({k: v for k, v in resolved.items()
                                                                  if k != "hydra"}).items()}
            assert c.data.params == expected, rid
            # Artifacts through the server's proxy, identical to the job's files ...
            assert {a.path for a in client.list_artifacts(rid)} == top_level, rid
            got = Path(client.download_artifacts(rid, "summary.json", str(downloads / rid)))
            assert got.read_bytes() == (job / "summary.json").read_bytes(), rid
            got = Path(client.download_artifacts(rid, "config/resolved_config.yaml", str(downloads / rid)))
            assert got.read_text() == local_config, rid
            # ... and stored where the server keeps them.
            stored = dest / rid / "artifacts"
            assert {str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file()} == files, rid
            same_path = [f for f in files if (job / f).is_file()]  # summary.json, data/, models/, plots/
            assert {"summary.json", "models/target_model.joblib", "data/target_train.csv"} <= set(same_path), rid
            for f in same_path:
                assert (stored / f).read_bytes() == (job / f).read_bytes(), (rid, f)

        with ThreadPoolExecutor(8) as pool:  # the server answers requests concurrently
            list(pool.map(check_job, children))
        jobs_csv = Path(client.download_artifacts(parent.info.run_id, "sweep_summary/jobs.csv", str(downloads)))
        assert len(jobs_csv.read_text().strip().splitlines()) == 1 + 16
        assert (dest / parent.info.run_id / "artifacts" / "sweep_summary" / "jobs.csv").exists()
        # Nothing of MLflow's landed beside the client: no local store, no local artifact root.
        for name in ("mlruns", "mlartifacts", "mlflow.db"):
            assert not (tmp_path / name).exists(), name
            assert not (server.server_dir / name).exists(), name
        server.timings["checks_s"] = round(time.monotonic() - t0, 2)
    finally:
        print(server.diagnostics())  # shown by pytest when the test fails
