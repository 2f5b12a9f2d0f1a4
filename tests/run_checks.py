"""What every finished train.py run must have written, whatever its family; and the
helpers the family tests share to make and read runs.

Shared by test_configs.py (every config's tiny run) and the family tests that
train a tiny variant longer in test_configs.py's place.
"""

import os

import orbax.checkpoint as ocp

from zoo.train.tensorboard import read_events

# family -> the pictures (``images/<name>_step<N>.png``) each evaluation draws
PICTURES = {
    "vae": ("vae_samples",),  # + reconstructions and interpolations for images
    "gan": ("gan_samples",),
    "ebm": ("ebm_energy", "ebm_samples"),
    "classifier": ("classifier_confusion",),
    "pixelcnn": ("pixelcnn_samples",),
    "flow": ("flow_samples_t1.0",),
    "diffusion": ("diffusion_samples", "diffusion_trajectory"),
}


def check_run(config, workdir, result: dict) -> None:
    """``result`` (train_and_evaluate's) and the files of the finished run in ``workdir``."""
    assert result, "evaluation produced no metrics"
    assert (workdir / "metrics.jsonl").exists()
    assert os.listdir(workdir / "checkpoints")
    assert os.listdir(workdir / "tb") and (workdir / "model_summary.txt").exists()
    if config.family in PICTURES:  # pictures at every evaluation, also sent to TensorBoard
        pictures = os.listdir(workdir / "images")
        tags = {e.summary.value[0].tag for e in read_events(
            str(next((workdir / "tb").iterdir()))) if e.HasField("summary")}
        for name in PICTURES[config.family]:
            assert any(p.startswith(f"{name}_step") for p in pictures), (name, pictures)
            assert f"images/{name}" in tags, (name, tags)
    if config.family == "seq2seq":  # attention pictures: an RNN's alignment, a Transformer's heads
        assert os.path.exists(workdir / "attention") == ("plain" not in config.model.name)


def tiny_config(module, **overrides):
    """A config module's tiny variant with ``{"section.key": value}`` overrides."""
    config = module.get_config("tiny")
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def final_state(workdir):
    """(step, restored train state as a tree) of a run's newest checkpoint."""
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    step = manager.latest_step()
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    manager.close()
    return step, restored["state"]
