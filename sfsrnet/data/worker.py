"""A one-call worker process: ``python -m sfsrnet.data.worker IN OUT``.

``IN`` is a pickle of ``("module:function", args)``; the function's result is pickled to ``OUT``.
A failure exits non-zero with the traceback on stderr, which the caller
(:func:`sfsrnet.data.build.run_fresh`) shows. Started fresh for every call, so no state (eSpeak's
synthesiser, torch threads) carries over from earlier calls.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the call pickled in ``argv[0]`` and pickle its result to ``argv[1]``."""
    if len(argv) != 2:
        print("usage: python -m sfsrnet.data.worker IN.pkl OUT.pkl", file=sys.stderr)
        return 2
    inp, out = Path(argv[0]), Path(argv[1])
    func, args = pickle.loads(inp.read_bytes())
    module, _, name = func.partition(":")
    result = getattr(importlib.import_module(module), name)(*args)
    # Written under another name and renamed: a half-written result is never read.
    part = out.with_name(out.name + ".part")
    part.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    part.rename(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
