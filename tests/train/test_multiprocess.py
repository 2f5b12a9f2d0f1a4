"""Two train.py processes on 127.0.0.1, one CPU device each, form one 2-device mesh.

One device a process is the usual multi-host layout (one accelerator a host)
and the cheapest to compile for. The first test trains the tiny date config on a
global (data 1, fsdp 2) mesh, so every parameter is split across the two
processes; it evaluates on those parameters, saves a checkpoint written by both
processes together, then resumes it in one process (the test's own) on 2 devices.
The second kills one process mid-run and checks that the survivor exits with an
error instead of hanging. Every wait is bounded; leftover processes are killed.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from zoo.train.loop import train_and_evaluate
from zoo.train.tensorboard import read_events

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import date_seq2seq  # noqa: E402

pytestmark = pytest.mark.slow  # processes of their own: make test-all (CI) runs them

CONFIG = os.path.join(ROOT, "configs", "date_seq2seq.py:tiny")
# A constant learning rate keeps the run length out of the compiled step: the first test's
# processes would leave the second test's step in XLA's cache (tests/conftest.py), and loading
# it there hangs both processes at the first collective. train.py turns the cache off for a
# multi-process CPU run (zoo/distributed.py), so the second test fails (no training step within
# 300 s) if that guard goes. The resume in this process (below) sets the same values.
MESH = ["--config.mesh.shape=(1,2)", "--config.mesh.axes=('data','fsdp')",
        "--config.mesh.strategy=fsdp", "--config.optim.schedule=constant",
        "--config.train.progress_bar=False"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_py(workdir, log_path, *flags) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(name, None)
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), "--config", CONFIG,
           "--workdir", str(workdir), *MESH, *flags]
    log = open(log_path, "w")  # noqa: SIM115 -- closed with the process by _stop
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _two_processes(workdir, logs, *flags, heartbeat: int) -> list[subprocess.Popen]:
    address = f"127.0.0.1:{_free_port()}"
    return [_train_py(workdir, logs / f"process{i}.log", "--coordinator_address", address,
                      "--num_processes=2", f"--process_id={i}", "--num_cpu_devices=1",
                      f"--heartbeat_timeout_seconds={heartbeat}",
                      "--initialization_timeout=60", *flags)
            for i in range(2)]


def _stop(processes):
    for p in processes:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)


def _wait(processes, timeout: float) -> list[int]:
    deadline = time.time() + timeout
    for p in processes:
        try:
            p.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"process {p.args[-1]!r} still running after {timeout} s")
    return [p.returncode for p in processes]


def _tail(path, lines: int = 30) -> str:
    return "".join(open(path, errors="replace").readlines()[-lines:])


def test_two_processes_train_and_save_then_one_process_resumes(tmp_path, capsys):
    workdir, logs = tmp_path / "run", tmp_path
    # Two steps, one checkpoint and one evaluation, at the end: collectives between two
    # processes (every FSDP step, every decoding step) are the slowest thing here.
    processes = _two_processes(workdir, logs, "--config.train.num_train_steps=2",
                               "--config.train.checkpoint_every=2",
                               "--config.train.eval_every=2", heartbeat=30)
    try:
        codes = _wait(processes, timeout=400)
    finally:
        _stop(processes)
    for i, code in enumerate(codes):
        assert code == 0, _tail(logs / f"process{i}.log")

    step = workdir / "checkpoints" / "2"
    # Both processes wrote the sharded state together, each its own data position.
    assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(os.listdir(step / "data"))
    assert (step / "state").is_dir()

    # The resume runs in this process, on 2 of its 8 devices: the same mesh, one process.
    config = date_seq2seq.get_config("tiny")
    config.mesh.shape, config.mesh.axes, config.mesh.strategy = (1, 2), ("data", "fsdp"), "fsdp"
    config.mesh.num_devices = 2
    config.optim.schedule = "constant"
    config.train.progress_bar = False
    config.train.num_train_steps = 4
    train_and_evaluate(config, str(workdir))
    assert "resumed from the checkpoint at step 2" in capsys.readouterr().out
    train = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    train = [r for r in train if r["split"] == "train"]
    assert [r["step"] for r in train] == [2, 4]  # 1-2 by two processes, 3-4 by one
    # TensorBoard: process 0 alone wrote, one file, appended to by the resumed run.
    events = os.listdir(workdir / "tb")
    assert len(events) == 1, events
    loss = [e.step for e in read_events(str(workdir / "tb" / events[0]))
            if e.HasField("summary") and e.summary.value[0].tag == "train/loss"]
    assert loss == [2, 4]


def test_when_one_process_dies_the_other_exits_with_an_error(tmp_path):
    processes = _two_processes(tmp_path / "run", tmp_path, "--config.train.num_train_steps=100000",
                               "--config.train.eval_every=100000", "--config.train.log_every=1",
                               heartbeat=5)
    try:
        deadline = time.time() + 300
        while "[train step" not in open(tmp_path / "process0.log").read():
            assert all(p.poll() is None for p in processes), _tail(tmp_path / "process0.log")
            assert time.time() < deadline, "no training step within 300 s"
            time.sleep(0.5)
        os.killpg(processes[1].pid, signal.SIGKILL)
        killed_at = time.time()
        (code,) = _wait(processes[:1], timeout=90)
        assert code != 0
        assert time.time() - killed_at < 90
    finally:
        _stop(processes)
