"""The training job: smoke runs, resume equivalence, corrupt checkpoints, bad configs, NaNs,
restores that never move or hide a checkpoint that is merely of another config, and
translating with a finished run."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from cli import train_py

from zoo.train import config as config_lib
from zoo.train import loop, telemetry
from zoo.train.checkpoints import CheckpointMismatchError
from zoo.train.loop import NonFiniteLossError, train_and_evaluate
from zoo.train.translation import align, evaluate_split, translate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import date_seq2seq  # noqa: E402


def _tiny(**overrides):
    """The default job's tiny variant on one device: these tests are about the loop, and a
    one-device program compiles and runs a quarter faster than one over the 8 fake devices
    (the sharded paths are test_sharding.py's, test_configs.py's and test_multiprocess.py's)."""
    c = date_seq2seq.get_config("tiny")
    c.mesh.num_devices = 1
    for key, value in overrides.items():
        section, name = key.split(".")
        c[section][name] = value
    return c


def _final_params(workdir):
    mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    step = mngr.latest_step()
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    mngr.close()
    return step, restored["state"]["params"]


def _fingerprint(folder) -> list:
    """Every file and folder under ``folder`` with its bytes' digest: equal means untouched."""
    rows = []
    for root, dirs, files in os.walk(folder):
        rel = os.path.relpath(root, folder)
        rows += [(os.path.join(rel, d), "dir") for d in sorted(dirs)]
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                rows.append((os.path.join(rel, name), hashlib.sha256(f.read()).hexdigest()))
    return sorted(rows)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(workdir, result) of one finished run of date_seq2seq's tiny variant, unchanged
    (6 steps, checkpoints 3 and 6); it is also test_configs.py's run of that config.

    Tests that only read a run read this one; tests that change a run work on a
    copy (``_copy_of``): one training for the whole module instead of one each."""
    workdir = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as patch:  # a clock that moves 1 s a step only
        clock = [0.0]
        patch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: clock[0]))

        class Ticking(telemetry.ProfileWindow):
            def before(self, step):
                clock[0] += 1.0
                super().before(step)

        patch.setattr(telemetry, "ProfileWindow", Ticking)
        return workdir, train_and_evaluate(_tiny(), str(workdir))


@pytest.fixture
def finished_run(finished):
    return finished[0]


def _copy_of(run, destination):
    shutil.copytree(run, destination)
    return destination


def _corrupt(step_folder):
    for root, _, files in os.walk(step_folder / "state"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")


def test_tiny_run_writes_metrics_pictures_and_checkpoints(finished):
    tmp_path, result = finished
    assert {"exact_match", "perplexity", "token_accuracy"} <= set(result)
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6]
    for key in ("loss", "token_accuracy", "perplexity", "learning_rate", "grad_norm",
                "tokens_per_sec"):
        assert np.isfinite(train[-1][key]), key
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (tmp_path / "attention" / "example0.png").stat().st_size > 1000
    assert {"3", "6"} <= set(os.listdir(tmp_path / "checkpoints"))
    assert train[-1]["flops_per_sec"] > 0 and 0 < train[-1]["mfu"] < 1
    # The fixture's clock moves 1 s a training step and stands still otherwise: every
    # window of 2 steps took 2 s, including steps 3-4, which the evaluation at step 3
    # splits (a clock restarted after it would count one second, doubling the rates).
    rates = [r["flops_per_sec"] for r in train]
    np.testing.assert_allclose(rates, rates[0], rtol=1e-6)
    # Batches of 16 dates of 10 characters + <eos>: 176 target tokens a step, a second.
    assert {r["tokens_per_sec"] for r in train} == {16 * 11.0}


def _events(workdir):
    """TensorBoard's own reading of the run's event files: the accumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = os.listdir(workdir / "tb")
    assert len(files) == 1, files  # one file, appended to across attempts
    acc = EventAccumulator(str(workdir / "tb"),
                           size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_holds_every_logged_metric_the_pictures_and_the_examples(finished):
    workdir = finished[0]
    acc = _events(workdir)
    records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    for split in ("train", "eval"):
        rows = [r for r in records if r["split"] == split]
        for key in rows[0].keys() - {"step", "split", "time"}:
            scalars = acc.Scalars(f"{split}/{key}")
            assert [e.step for e in scalars] == [r["step"] for r in rows], key
            np.testing.assert_allclose([e.value for e in scalars], [r[key] for r in rows],
                                       rtol=1e-6, err_msg=key)
    assert {"train/learning_rate", "train/grad_norm"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Images("attention/example0")] == [3, 6]
    png = acc.Images("attention/example0")[-1].encoded_image_string
    assert png.startswith(b"\x89PNG")
    text = acc.Tensors("eval/examples/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "**reference**" in text and "**hypothesis**" in text


def test_model_summary_counts_every_parameter(finished):
    workdir = finished[0]
    summary = open(workdir / "model_summary.txt").read()
    total = int(re.search(r"^total\s+([\d,]+)", summary, re.M).group(1).replace(",", ""))
    _, params = _final_params(workdir)
    assert total == sum(p.size for p in jax.tree.leaves(params))


def test_rerun_of_a_finished_job_resumes_instead_of_retraining(finished_run, tmp_path):
    tmp_path = _copy_of(finished_run, tmp_path / "run")
    lines = len(open(tmp_path / "metrics.jsonl").readlines())
    train_and_evaluate(_tiny(), str(tmp_path))
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert not [r for r in records[lines:] if r["split"] == "train"]


CONFIG = os.path.join(ROOT, "configs", "date_seq2seq.py:tiny")


def _run_cli(workdir, *flags, timeout=300):
    """train.py in a process of its own (the kill test); the other command-line tests run
    it in this one (tests/cli.py)."""
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), "--config", CONFIG,
           "--workdir", str(workdir), *flags]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_parameters(finished_run, tmp_path):
    """SIGKILL mid-run, restart with the same command: same params as an uninterrupted run.

    The uninterrupted run is the ``finished`` fixture's: the same tiny config on one
    device, trained in this process (which has 8) rather than in a process of its own. The
    evaluation at step 3 decodes and draws, which takes far longer than the 50 ms poll,
    so a kill sent as soon as checkpoint 3 exists lands before the run can write
    checkpoint 6; the test checks that it did (killed by the signal, no final
    checkpoint) and that the restart really resumed from an earlier step. The restart
    also captures a profile of steps 4-5, which changes no value."""
    flags = ["--config.mesh.num_devices=1"]
    victim = _run_cli(tmp_path / "killed", *flags)
    ckpt_dir = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not (ckpt_dir / "3").exists():
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run ended before the kill"
    assert not (ckpt_dir / "6").exists(), "the run finished before it was killed"
    resumed = _run_cli(tmp_path / "killed", *flags, "--config.train.profile_steps=(4,5)")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    match = re.search(r"resumed from the checkpoint at step (\d+)", output)
    assert match and 3 <= int(match.group(1)) < 6, output
    traces = list((tmp_path / "killed" / "profile").glob("plugins/profile/*/*.xplane.pb"))
    assert traces and traces[0].stat().st_size > 0
    assert list((tmp_path / "killed" / "profile").glob("plugins/profile/*/perfetto*"))

    step_a, params_a = _final_params(finished_run)
    step_b, params_b = _final_params(tmp_path / "killed")
    assert step_a == step_b == 6
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
        np.testing.assert_array_equal(a, b)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(finished_run, tmp_path, capsys):
    tmp_path = _copy_of(finished_run, tmp_path / "run")
    _corrupt(tmp_path / "checkpoints" / "6")
    config = _tiny(**{"train.num_train_steps": 9})
    train_and_evaluate(config, str(tmp_path))
    assert "resumed from the checkpoint at step 3" in capsys.readouterr().out
    moved = os.listdir(str(tmp_path / "checkpoints") + ".corrupt")
    assert len(moved) == 1 and moved[0].startswith("6-")
    assert _final_params(tmp_path)[0] == 9
    # Steps 4 and 6 were logged by the first attempt and again after the rewind to 3:
    # both logs keep one of each, in order.
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6, 8, 9]
    assert [r["step"] for r in records if r["split"] == "eval"] == [3, 6, 9]
    acc = _events(tmp_path)
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6, 8, 9]
    assert [e.step for e in acc.Scalars("eval/nll")] == [3, 6, 9]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """From step 4 on the step poisons its output; the loop must stop before saving it."""
    import jax.numpy as jnp

    real = loop.make_train_step

    def poisoned(loss_fn, schedule):
        step_fn = real(loss_fn, schedule)

        def train_step(state, batch):
            new_state, metrics = step_fn(state, batch)
            factor = jnp.where(state.step >= 3, jnp.nan, 1.0)
            params = jax.tree.map(lambda p: p * factor, new_state.params)
            return new_state.replace(params=params), {**metrics,
                                                      "loss": metrics["loss"] * factor}

        return train_step

    monkeypatch.setattr(loop, "make_train_step", poisoned)
    config = _tiny(**{"train.checkpoint_every": 1, "train.log_every": 5,
                      "train.eval_every": 100})
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 4.*step 3"):
        train_and_evaluate(config, str(tmp_path))
    step, params = _final_params(tmp_path)
    assert step == 3
    assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))


@pytest.mark.parametrize("key,value,error,match", [
    ("train.bogus", 1, ValueError, "train.bogus"),
    ("train.num_train_steps", "ten", TypeError, "train.num_train_steps"),
    ("model.hidden_sizes", 3, ValueError, "hidden_sizes"),
    ("train.profile_steps", (3, 2), ValueError, r"train.profile_steps.*1 <= first <= last"),
    ("train.profile_steps", (1, 99), ValueError, r"train.profile_steps.*num_train_steps = 6"),
])
def test_bad_config_keys_fail_before_compiling(tmp_path, key, value, error, match):
    # A config file may spell anything; build it untyped, as a file would.
    config = ml_collections.ConfigDict(_tiny().to_dict(), type_safe=False)
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(error, match=match):
        train_and_evaluate(config, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_cli_names_an_unknown_override_in_one_line(tmp_path):
    for override, named in (("--config.train.bogus=3", "'bogus'"),
                            ("--config.train.num_train_step=3",
                             "'num_train_step' (did you mean 'num_train_steps'?)")):
        proc = train_py("--config", CONFIG, "--workdir", tmp_path / "run", override)
        assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
            "train.py: a config override names no key of the config (overrides given: "
            f"{override.split('=')[0]}): {named}"], proc.stderr
    assert not os.path.exists(tmp_path / "run")


def test_unknown_section_is_named():
    with pytest.raises(ValueError, match="'trainer'"):
        config_lib.validate(ml_collections.ConfigDict({"trainer": {"steps": 1}}))


def test_restore_from_another_run_continues_it_and_only_reads_it(finished_run, tmp_path, capsys):
    before = _fingerprint(finished_run)
    config = _tiny(**{"train.num_train_steps": 8, "train.restore_from": str(finished_run)})
    train_and_evaluate(config, str(tmp_path / "b"))
    assert "restored step 6" in capsys.readouterr().out
    assert _final_params(tmp_path / "b")[0] == 8
    assert _fingerprint(finished_run) == before


@pytest.mark.slow  # a whole tiny run, 16 s: make test-all
def test_bfloat16_compute_keeps_float32_params(tmp_path):
    config = _tiny(**{"model.dtype": "bfloat16", "train.num_train_steps": 2})
    result = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(result["nll"])
    _, params = _final_params(tmp_path)
    assert {p.dtype for p in jax.tree.leaves(params)} == {np.dtype("float32")}


def test_a_changed_model_config_in_the_same_workdir_stops_and_moves_nothing(finished_run):
    before = _fingerprint(finished_run)
    changed = _tiny(**{"model.hidden_dim": 48, "train.num_train_steps": 9})
    with pytest.raises(CheckpointMismatchError) as err:
        train_and_evaluate(changed, str(finished_run))
    message = str(err.value)
    assert "nothing was moved" in message
    assert re.search(r"params/\S+ has shape \(\d+(, \d+)*\) float32 in the checkpoint but "
                     r"\(\d+(, \d+)*\) float32 in this config", message), message
    assert _fingerprint(finished_run) == before  # config.json and metrics.jsonl included
    assert not os.path.exists(str(finished_run / "checkpoints") + ".corrupt")


def test_a_changed_optimizer_in_the_same_workdir_stops_and_moves_nothing(finished_run):
    before = _fingerprint(finished_run)
    with pytest.raises(CheckpointMismatchError, match="opt_state"):
        train_and_evaluate(_tiny(**{"optim.grad_accum_steps": 2}), str(finished_run))
    assert _fingerprint(finished_run) == before


def test_restore_from_a_run_of_another_model_stops_and_touches_neither_folder(
        finished_run, tmp_path):
    before = _fingerprint(finished_run)
    other = _tiny(**{"train.restore_from": str(finished_run)})
    other.model = ml_collections.ConfigDict({"name": "transformer_tiny"})
    with pytest.raises(CheckpointMismatchError, match="nothing was moved"):
        train_and_evaluate(other, str(tmp_path / "new"))
    assert _fingerprint(finished_run) == before
    assert not os.path.exists(tmp_path / "new" / "checkpoints" / "0")
    assert not [d for d in os.listdir(tmp_path / "new" / "checkpoints")]


@pytest.mark.slow  # a second run restored from the first: 13 s on 2 cores
def test_restore_from_skips_but_never_moves_a_corrupt_step_of_the_other_run(
        finished_run, tmp_path, capsys):
    _copy_of(finished_run, tmp_path / "a")
    _corrupt(tmp_path / "a" / "checkpoints" / "6")
    before = _fingerprint(tmp_path / "a")
    config = _tiny(**{"train.num_train_steps": 8, "train.restore_from": str(tmp_path / "a")})
    train_and_evaluate(config, str(tmp_path / "b"))
    assert "restored step 3" in capsys.readouterr().out
    assert _fingerprint(tmp_path / "a") == before
    assert not os.path.exists(str(tmp_path / "a" / "checkpoints") + ".corrupt")


def test_the_command_line_names_a_mismatch_and_moves_nothing(finished_run):
    before = _fingerprint(finished_run)
    proc = train_py("--config", CONFIG, "--workdir", finished_run,
                    "--config.model.hidden_dim=48")
    assert proc.returncode == 1, proc
    assert proc.stderr.rstrip().splitlines()[-1].startswith("train.py: checkpoint step 6 in ")
    assert "nothing was moved" in proc.stderr and "Traceback" not in proc.stderr
    assert _fingerprint(finished_run) == before


# --- translating with the finished run (zoo/train/translation.py) ----------------------------

SOURCES = ["6/6/26", "February 11, 1991", "27.04.1995"]


def test_translate_gives_one_line_a_sentence_whatever_the_batching(finished_run):
    before = _fingerprint(finished_run)
    one = translate(str(finished_run), SOURCES)
    assert one.step == 6 and one.sources == SOURCES and len(one.texts) == len(SOURCES)
    assert all(isinstance(t, str) for t in one.texts)
    # Padding a sentence inside a batch must not change its translation.
    assert translate(str(finished_run), SOURCES, batch_size=1).texts == one.texts
    assert translate(str(finished_run), SOURCES, beam_size=1).texts == one.texts  # greedy
    beam = translate(str(finished_run), SOURCES, beam_size=3, length_penalty=0.0, max_len=4)
    assert len(beam.texts) == len(SOURCES)
    assert _fingerprint(finished_run) == before  # reading only


def test_translate_cuts_an_over_long_sentence_with_a_warning(finished_run):
    long = "1" * 40  # the tiny date config trains on at most 32 source characters
    with pytest.warns(UserWarning, match=r"sentence 1 has 40 tokens.*max_src_len=32"):
        out = translate(str(finished_run), ["6/6/26", long])
    assert out.texts[1] == translate(str(finished_run), ["1" * 32]).texts[0]


def test_translate_refuses_what_it_cannot_translate(finished_run, tmp_path):
    with pytest.raises(ValueError, match="sentences is empty"):
        translate(str(finished_run), [])
    with pytest.raises(ValueError, match="entry 1 is '  '"):
        translate(str(finished_run), ["6/6/26", "  "])
    with pytest.raises(ValueError, match="beam_size must be a positive int"):
        translate(str(finished_run), SOURCES, beam_size=0)
    lm = _tiny()
    lm.family = "lm"
    lm.model = ml_collections.ConfigDict({"name": "lm_tiny"})
    with pytest.raises(ValueError, match="family 'seq2seq'.*has family 'lm'"):
        translate(str(finished_run), SOURCES, config=lm)
    shutil.copy(finished_run / "config.json", tmp_path / "config.json")  # a run never trained
    with pytest.raises(ValueError, match="no checkpoint"):
        translate(str(tmp_path), SOURCES)


def test_the_command_line_translates_standard_input_line_by_line(finished_run):
    proc = train_py("--workdir", finished_run, "--translate", stdin="\n".join(SOURCES) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == translate(str(finished_run), SOURCES).texts
    assert "translations by step 6" in proc.stderr
    empty = train_py("--workdir", finished_run, "--translate", stdin="\n")
    assert empty.returncode == 1 and "no sentences" in empty.stderr


@pytest.mark.slow  # decodes a whole split: 13 s on 2 cores
def test_eval_only_scores_a_whole_split_from_the_best_checkpoint(finished_run):
    before = _fingerprint(finished_run)
    result = evaluate_split(str(finished_run), split="test")
    records = [json.loads(line) for line in open(finished_run / "metrics.jsonl")]
    scores = {r["step"]: r["exact_match"] for r in records if r["split"] == "eval"}
    best = max(scores, key=lambda step: (scores[step], step))  # ties: the newest
    assert result["step"] == best and result["checkpoint"] == "best"
    assert result["split"] == "test" and result["num_sentences"] == 32  # the tiny test split
    # The references are the split's raw target texts, the hypotheses what translate() gives.
    assert all(len(r) == 10 and r[4] == "-" for r in result["references"])  # ISO dates
    assert result["exact_match"] == np.mean([h == r for h, r in zip(
        result["hypotheses"], result["references"], strict=True)])
    latest = evaluate_split(str(finished_run), split="test[:5]", checkpoint="latest",
                            beam_size=1)
    assert latest["step"] == 6 and latest["num_sentences"] == 5 and latest["method"] == "greedy"
    assert latest["sources"] == result["sources"][:5]
    assert latest["hypotheses"] == translate(str(finished_run), latest["sources"],
                                             beam_size=1).texts
    # Checkpoint averaging: the run keeps steps 3 and 6; the newest two are averaged.
    averaged = evaluate_split(str(finished_run), split="test[:5]", checkpoint="latest",
                              beam_size=1, average=2)
    assert averaged["steps"] == [6, 3] and latest["steps"] == [6]
    assert averaged["hypotheses"] == translate(str(finished_run), latest["sources"], beam_size=1,
                                               average=2).texts
    assert translate(str(finished_run), SOURCES[:1], average=5).steps == (6, 3)  # all there are
    with pytest.raises(ValueError, match="checkpoint must be 'best' or 'latest'"):
        evaluate_split(str(finished_run), checkpoint="newest")
    with pytest.raises(ValueError, match="average must be a positive int"):
        evaluate_split(str(finished_run), average=0)
    assert _fingerprint(finished_run) == before  # reading only


def test_the_command_line_evaluates_and_writes_the_scores(finished_run, tmp_path):
    run = _copy_of(finished_run, tmp_path / "run")
    cmd = ["--workdir", run, "--eval_only", "--split", "validation", "--checkpoint", "latest",
           "--average", "2", "--beam_size", "2"]
    proc = train_py(*cmd)
    assert proc.returncode == 0, proc.stderr
    assert "validation split" in proc.stdout and "exact_match" in proc.stdout
    assert "latest mean of 2 steps 6, 3" in proc.stdout
    [written] = [f for f in os.listdir(run / "eval") if f.endswith(".json")]
    assert written == "validation_step6_avg2_beam2_lp0.6.json"
    scores = json.load(open(run / "eval" / written))
    assert scores["num_sentences"] == 32 and scores["beam_size"] == 2
    assert scores["steps"] == [6, 3]
    assert len(open(run / "eval" / written.replace(".json", ".txt")).readlines()) == 32
    wrong = train_py(*cmd[:-8], "--split", "nope")
    assert wrong.returncode == 1 and "train.py --eval_only:" in wrong.stderr


def test_align_gives_the_alignment_of_the_translation(finished_run):
    out = align(str(finished_run), "February 11, 1991")
    assert out.step == 6
    assert out.text == translate(str(finished_run), ["February 11, 1991"]).texts[0]
    assert out.source == list("February 11, 1991")  # characters: the date task's vocabulary
    assert out.weights.shape == (len(out.output), len(out.source))
    np.testing.assert_allclose(out.weights.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="sentence must be a non-empty string"):
        align(str(finished_run), " ")
