"""What a run reports about itself: FLOPs of a step, the peak FLOP/s probe, the model
summary, and the event files' resume rules (no training here; the runs are test_loop's)."""

import functools
import glob
import gzip
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from zoo import registry
from zoo.train import telemetry
from zoo.train.metrics import MetricWriter
from zoo.train.tensorboard import EventLog, read_events


def _xla_flops(fn, *args) -> float:
    return jax.jit(fn).lower(*args).compile().cost_analysis()["flops"]


def test_a_dense_layer_costs_two_m_n_k():
    m, k, n = 48, 96, 40
    x, w = jnp.ones((m, k)), jnp.ones((k, n))
    assert telemetry.step_flops(lambda x, w: x @ w, x, w) == 2 * m * n * k
    assert _xla_flops(lambda x, w: x @ w, x, w) == 2 * m * n * k  # XLA agrees, no loop


def test_batched_einsum_and_gradient_are_counted():
    q, k = jnp.ones((2, 3, 5, 8)), jnp.ones((2, 3, 7, 8))  # [B, N, T, H], [B, N, S, H]
    scores = 2 * 2 * 3 * 5 * 7 * 8
    assert telemetry.step_flops(lambda q, k: jnp.einsum("bnth,bnsh->bnts", q, k), q, k) == scores
    # The gradient with respect to both inputs: two more products of the same size.
    grad = jax.grad(lambda q, k: jnp.einsum("bnth,bnsh->bnts", q, k).sum(), argnums=(0, 1))
    assert telemetry.step_flops(grad, q, k) == 3 * scores


def test_a_scan_counts_its_body_once_per_step_where_xla_counts_it_once():
    steps, b, d = 10, 8, 32
    w = jnp.ones((d, d))

    def rnn(h, xs):
        return jax.lax.scan(lambda h, x: (jnp.tanh(h @ w + x), None), h, xs)[0]

    h, xs = jnp.ones((b, d)), jnp.ones((steps, b, d))
    body = 2 * b * d * d
    assert telemetry.step_flops(rnn, h, xs) == steps * body
    assert _xla_flops(rnn, h, xs) < 2 * body  # why the count walks the jaxpr


def test_a_convolution_is_counted_like_xla_counts_it():
    x = jnp.ones((2, 9, 9, 3))  # [B, Y, X, C]
    w = jnp.ones((3, 3, 3, 16))  # [KY, KX, C, F]

    def conv(x, w, padding):
        return jax.lax.conv_general_dilated(x, w, (1, 1), padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    # Every output position costs the whole window (XLA leaves out the taps on padding).
    same = functools.partial(conv, padding="SAME")
    assert telemetry.step_flops(same, x, w) == 2 * (2 * 9 * 9 * 16) * (3 * 3 * 3)
    valid = functools.partial(conv, padding="VALID")
    assert telemetry.step_flops(valid, x, w) == 2 * (2 * 7 * 7 * 16) * (3 * 3 * 3)
    assert telemetry.step_flops(valid, x, w) == _xla_flops(valid, x, w)


def test_peak_flops_keeps_the_best_probe_this_machine_has_shown(tmp_path, monkeypatch):
    assert telemetry.peak_flops(3e12, cache_dir=str(tmp_path)) == 3e12  # configured: no probe
    assert not os.listdir(tmp_path)
    rates = iter([5e10, 2e10, 9e10])  # quiet, then beside another job, then quieter still
    monkeypatch.setattr(telemetry, "_probe", lambda device: next(rates))
    assert telemetry.peak_flops(cache_dir=str(tmp_path)) == 5e10
    assert telemetry.peak_flops(cache_dir=str(tmp_path)) == 5e10  # a busy probe never lowers it
    assert telemetry.peak_flops(cache_dir=str(tmp_path)) == 9e10
    (key,) = json.load(open(tmp_path / "peak_flops.json"))
    assert json.load(open(tmp_path / "peak_flops.json"))[key] == 9e10


def test_the_probe_measures_a_plausible_rate():
    rate = telemetry._probe(jax.devices()[0], rounds=2)
    assert 1e8 < rate < 1e15  # FLOP/s of one CPU device, whatever the machine


def test_model_summary_totals_every_parameter_of_a_registry_model():
    spec = registry.get("transformer_tiny")
    model = spec.module(config=registry.make_config("transformer_tiny", vocab_size=50))
    src = np.ones((1, 6), np.int32)
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), src, src))["params"]
    summary = telemetry.model_summary(params)
    leaves = jax.tree.leaves(params)
    count = sum(int(np.prod(p.shape)) for p in leaves)
    total = [line for line in summary.splitlines() if line.startswith("total")][0].split()
    assert int(total[1].replace(",", "")) == count
    modules = [line.split()[0] for line in summary.splitlines()[2:-2]]
    assert len(modules) == len(set(modules))  # one row a module


def _steps(folder, tag):
    path = glob.glob(os.path.join(folder, "events.out.tfevents.*"))
    assert len(path) == 1
    return [e.step for e in read_events(path[0]) if e.HasField("summary")
            and e.summary.value[0].tag == tag]


def test_a_resumed_writer_drops_the_rewound_steps_and_appends(tmp_path):
    writer = MetricWriter(str(tmp_path), 10, progress_bar=False)
    for step in (2, 4, 6):
        writer.write(step, "train", {"loss": float(step)})
    writer.close()
    # Killed after logging step 6; the newest checkpoint is step 3.
    writer = MetricWriter(str(tmp_path), 10, initial_step=3, progress_bar=False)
    writer.write(3, "train", {"loss": 0.0})  # a step the first attempt never logged
    for step in (4, 6, 8):
        writer.write(step, "train", {"loss": -float(step)})
    writer.write(8, "train", {"loss": 99.0})  # a repeat of a logged step is not written
    writer.close()
    assert _steps(tmp_path / "tb", "train/loss") == [2, 3, 4, 6, 8]
    records = [r for r in open(tmp_path / "metrics.jsonl")]
    assert len(records) == 5 and '"loss": 99.0' not in "".join(records)


def test_a_half_written_event_is_dropped_on_resume(tmp_path):
    log = EventLog(str(tmp_path))
    log.scalar("x", 1.0, 1)
    log.scalar("x", 2.0, 2)
    log.close()
    path = glob.glob(str(tmp_path / "events.out.tfevents.*"))[0]
    with open(path, "ab") as f:
        f.write(b"\x20\x00\x00\x00\x00\x00\x00\x00garbage")  # a killed writer's last record
    log = EventLog(str(tmp_path), resume_step=5)
    log.scalar("x", 3.0, 3)
    log.close()
    assert _steps(tmp_path, "x") == [1, 2, 3]


def _a_python_call_to_look_for(x):
    return x + 1


def test_a_profile_traces_python_calls_only_when_asked(tmp_path):
    """The window's trace holds the device ops; Python calls only with python=True."""
    step = jax.jit(lambda x: x * 2)
    x = step(jnp.ones(8))
    for python in (False, True):
        folder = str(tmp_path / f"python_{python}")
        window = telemetry.ProfileWindow((1, 1), folder, python=python)
        window.before(1)
        with window.annotation(1):
            x = step(_a_python_call_to_look_for(x))
        window.after(1, x)
        assert not window.active
        [perfetto] = glob.glob(os.path.join(folder, "plugins/profile/*/perfetto_trace.json.gz"))
        with gzip.open(perfetto, "rt") as f:
            trace = f.read()
        assert '"name": "train", "args": {"step_num": "1"}' in trace  # the step annotation
        assert '"hlo_module": "jit__lambda"' in trace  # the step's XLA ops
        assert ("_a_python_call_to_look_for" in trace) == python
