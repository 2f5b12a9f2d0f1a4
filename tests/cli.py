"""train.py's command line, run inside the test process.

A fresh interpreter costs every command-line test 3-4 s of imports before it
does anything; the tests of what the command line says on a bad input run its
``main`` here instead, with app.run's ways of ending (an exit code, a message
on stderr). The tests that need a real process (a kill, standard input through
a pipe, a full run) still start one.
"""

import contextlib
import io
import os
import sys
from typing import NamedTuple

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def train_py(*args, stdin: str = "") -> Result:
    """``python train.py *args < stdin``, in this process; the flags are reset after."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import train

    out, err = io.StringIO(), io.StringIO()
    argv = ["train.py", *map(str, args)]
    code, saved_stdin, saved_argv = 0, sys.stdin, sys.argv
    # ml_collections reads the --config.* overrides from sys.argv itself
    sys.stdin, sys.argv = io.StringIO(stdin), argv
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                train.main(train.parse_flags(argv))  # what app.run(main, flags_parser=...) does
            except app.UsageError as e:
                print(e, file=sys.stderr)
                code = 1
            except SystemExit as e:  # a message: printed to stderr, exit status 1
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                code = 1 if isinstance(e.code, str) else int(e.code or 0)
    finally:
        sys.stdin, sys.argv = saved_stdin, saved_argv
        flags.FLAGS.unparse_flags()
    return Result(code, out.getvalue(), err.getvalue())
