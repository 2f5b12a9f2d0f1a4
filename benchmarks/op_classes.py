"""Where a step's time goes: per-op-class time of a jitted JAX call and of a torch call.

JAX side: ``jax.profiler`` traces the compiled executable; on CPU every XLA thunk
(a fusion, a dot, a copy, a while loop...) is one event named after its HLO
instruction. The optimised HLO text (``compiled.as_text()``) says what each
instruction is: its opcode, the ops inside a fusion, and the Python stack it
came from. Both together give each thunk a class:

    matmul              a dot or convolution, alone or fused (XLA:CPU's YNNPACK fusions can
                        carry a softmax's exp or a reduction: they count here)
    exp/softmax         transcendental elementwise: exp, log, tanh, logistic, erf
    reductions/norms    a reduce without either of the above (sums, max, layer-norm moments)
    transposes/copies   only data movement: copy, transpose, pad, slice, concatenate, ...
    gather/scatter      embedding lookups and their gradients
    elementwise         any other fusion (adds, multiplies, selects)
    optimizer           anything but a matmul whose source is optax (Adam's update)
    loop control        a while loop's own time (its body's thunks counted by class)

Torch side: ``torch.profiler`` self CPU time per aten op, classed by name in the
same way; time inside no op (Python, autograd bookkeeping, dispatch) is
``framework``, which for XLA is the step's wall time outside every thunk.
"""

from __future__ import annotations

import collections
import glob
import re
import tempfile
from collections.abc import Callable

import jax

CLASSES = ("matmul", "fused attention", "exp/softmax", "reductions/norms", "transposes/copies",
           "gather/scatter", "elementwise", "optimizer", "loop control", "framework")

_MATMUL = {"dot", "convolution"}
_TRANSCENDENTAL = {"exponential", "log", "tanh", "logistic", "exponential-minus-one",
                   "log-plus-one", "erf", "power"}
_MOVEMENT = {"copy", "transpose", "bitcast", "reshape", "slice", "dynamic-slice",
             "dynamic-update-slice", "pad", "concatenate", "broadcast", "parameter", "constant",
             "tuple", "get-tuple-element", "iota", "reverse", "convert"}
_GATHER = {"gather", "scatter"}
_CONTROL = {"while", "conditional", "call"}

_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%(?P<name>[\w.\-]+)\s*=\s*.*?\s(?P<op>[a-z][a-z0-9\-]*)\((?P<rest>.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%(?P<name>[\w.\-]+)\s.*\{\s*$")


class Hlo:
    """The parts of an optimised HLO module's text that say what each instruction is."""

    def __init__(self, text: str):
        self.ops: dict[str, str] = {}  # instruction -> opcode
        self.calls: dict[str, str] = {}  # fusion instruction -> its fused computation
        self.frame: dict[str, int] = {}  # instruction -> stack frame id
        self.body: dict[str, set[str]] = collections.defaultdict(set)  # computation -> opcodes
        files, locations, parents = {}, {}, {}
        section, computation = None, None
        for line in text.splitlines():
            if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
                section = line
                continue
            if section and line.strip() and not line.startswith("%") and "ENTRY" not in line:
                ident, _, value = line.strip().partition(" ")
                if section == "FileNames":
                    files[int(ident)] = value.strip('"')
                elif section == "FileLocations":
                    locations[int(ident)] = int(re.search(r"file_name_id=(\d+)", value)[1])
                elif section == "StackFrames":
                    loc = int(re.search(r"file_location_id=(\d+)", value)[1])
                    parent = int(re.search(r"parent_frame_id=(\d+)", value)[1])
                    parents[int(ident)] = (loc, parent)
                continue
            section = None
            head = _COMPUTATION.match(line)
            if head and "=" not in line.split("{")[0]:
                computation = head["name"]
                continue
            m = _INSTRUCTION.match(line)
            if not m:
                continue
            name, op = m["name"], m["op"]
            self.ops[name] = op
            self.body[computation].add(op)
            called = re.search(r"calls=%([\w.\-]+)", m["rest"])
            if called:
                self.calls[name] = called[1]
            frame = re.search(r"stack_frame_id=(\d+)", m["rest"])
            if frame:
                self.frame[name] = int(frame[1])
        self._files = {frame: self._chain(frame, files, locations, parents) for frame in parents}

    @staticmethod
    def _chain(frame, files, locations, parents) -> tuple[str, ...]:
        seen, out = set(), []
        while frame in parents and frame not in seen:
            seen.add(frame)
            loc, parent = parents[frame]
            out.append(files.get(locations.get(loc), ""))
            frame = parent
        return tuple(out)

    def fused_ops(self, name: str) -> set[str]:
        """Opcodes an instruction runs: its own, or every op of its fused computation."""
        ops, todo, seen = set(), [name], set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in self.calls:
                body = self.body.get(self.calls[current], set())
                ops |= body
            else:
                ops.add(self.ops.get(current, ""))
        return ops

    def from_optax(self, name: str) -> bool:
        return any("/optax/" in f for f in self._files.get(self.frame.get(name, -1), ()))

    def classify(self, name: str) -> str:
        op = self.ops[name]
        if op in _CONTROL:
            return "loop control"
        ops = self.fused_ops(name)
        if ops & _MATMUL:  # even when XLA fused the softmax's exp into the matmul
            return "matmul"
        if self.from_optax(name):
            return "optimizer"
        if ops & _TRANSCENDENTAL:
            return "exp/softmax"
        if "reduce" in ops or "reduce-window" in ops:
            return "reductions/norms"
        if ops & _GATHER:
            return "gather/scatter"
        if ops <= _MOVEMENT:
            return "transposes/copies"
        return "elementwise"


def _self_times(events) -> list[tuple[str, float]]:
    """(name, self ns) of events on one thread: a while loop's time minus its body's thunks."""
    out, stack = [], []  # stack entries: [name, end ns, duration ns, children's ns]
    for e in sorted(events, key=lambda e: (e.start_ns, -e.duration_ns)):
        while stack and e.start_ns >= stack[-1][1]:
            name, _, duration, children = stack.pop()
            out.append((name, duration - children))
        if stack:
            stack[-1][3] += e.duration_ns
        stack.append([e.name, e.start_ns + e.duration_ns, e.duration_ns, 0.0])
    out += [(name, duration - children) for name, _, duration, children in stack]
    return out


def xla_profile(run: Callable[[], object], hlo_text: str, steps: int, wall_s: float) -> dict:
    """ms per step by class (and the top thunks) of ``run``, a compiled call that blocks."""
    from jax.profiler import ProfileData

    hlo = Hlo(hlo_text)
    run()
    trace_dir = tempfile.mkdtemp(prefix="zoo_profile_")
    with jax.profiler.trace(trace_dir):
        for _ in range(steps):
            run()
    (path,) = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    by_class, by_op = collections.Counter(), collections.Counter()
    for plane in ProfileData.from_file(path).planes:
        for line in plane.lines:
            thunks = [e for e in line.events if e.name in hlo.ops]
            for name, self_ns in _self_times(thunks):
                ms = self_ns / 1e6 / steps
                by_class[hlo.classify(name)] += ms
                by_op[name] += ms
    by_class["framework"] = max(0.0, wall_s * 1e3 - sum(by_class.values()))
    top = [(name, hlo.classify(name), ms) for name, ms in by_op.most_common(8)]
    return {"classes": dict(by_class), "top": top, "wall_ms": wall_s * 1e3}


_TORCH_CLASSES = (  # (class, substrings of aten op names), first match wins
    ("fused attention", ("scaled_dot_product", "flash_attention")),
    ("matmul", ("::mm", "::addmm", "::bmm", "::baddbmm", "::linear", "::matmul", "mkldnn_rnn",
                "::lstm", "::_addmm_activation")),
    ("optimizer", ("_foreach_", "fused_adam", "Optimizer.")),
    ("exp/softmax", ("softmax", "::exp", "::tanh", "::sigmoid", "::log", "::gelu")),
    ("reductions/norms", ("layer_norm", "::sum", "::mean", "::amax", "::max", "::nll_loss",
                          "cross_entropy", "::norm")),
    ("gather/scatter", ("embedding", "index_select", "index_add", "scatter", "gather",
                        "index_put")),
    ("transposes/copies", ("::copy_", "::clone", "::contiguous", "::cat", "::stack", "::t",
                           "::transpose", "::permute", "::_to_copy", "::to", "::expand",
                           "::view", "::reshape", "::select", "::slice", "::unbind",
                           "::split", "::narrow", "::as_strided", "::empty", "::zeros",
                           "::fill_", "::zero_", "::resize_")),
    ("framework", ("autograd::", "torch::autograd", "Backward", "ProfilerStep")),
)


def torch_class(name: str) -> str:
    for cls, needles in _TORCH_CLASSES:
        if any(needle in name for needle in needles):
            return cls
    return "elementwise" if name.startswith("aten::") else "framework"


def _under_optimizer(event) -> bool:
    """Adam's foreach kernels are plain aten ops; their ancestor says they are the optimizer's."""
    while event is not None:
        if event.name.startswith("Optimizer."):
            return True
        event = event.cpu_parent
    return False


def torch_profile(run: Callable[[], object], steps: int, wall_s: float) -> dict:
    """ms per step by class (and the top ops) of ``run``, from torch.profiler's self CPU time."""
    import torch

    run()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            run()
    by_class, by_op = collections.Counter(), collections.Counter()
    for event in prof.events():
        ms = event.self_cpu_time_total / 1e3 / steps
        cls = "optimizer" if _under_optimizer(event) else torch_class(event.name)
        by_class[cls] += ms
        by_op[event.name, cls] += ms
    inside = sum(ms for cls, ms in by_class.items() if cls != "framework")
    by_class["framework"] = max(0.0, wall_s * 1e3 - inside)
    top = [(name, cls, ms) for (name, cls), ms in by_op.most_common(8)]
    return {"classes": dict(by_class), "top": top, "wall_ms": wall_s * 1e3}
