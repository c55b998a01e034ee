"""Run one page's Python examples in order, in one namespace, as a reader pasting them would.

    python doc_runner.py BLOCKS.json RESULTS.json

BLOCKS.json is a list of ``{"where": "page:line", "code": "..."}``. Each block runs with its
stdout captured (progress printed from worker threads included); RESULTS.json gets
``[{"where", "stdout"}]`` for the blocks that ran. A block that raises stops the page: the
traceback goes to stderr with the block's place, and the exit status is 1.

Our own deprecations are errors here (``DEPRECATED``): an example shows today's names, never
one that works for a last release with a ``DeprecationWarning``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
import warnings

#: The messages of runanywhere's own DeprecationWarnings (FetchConfig's flat keywords and
#: attributes, ModelCache's renamed reads).
DEPRECATED = r"(FetchConfig|ModelCache)\b.* is deprecated: use "


def main(blocks_file: str, results_file: str) -> int:
    with open(blocks_file, encoding="utf-8") as f:
        blocks = json.load(f)
    warnings.filterwarnings("error", message=DEPRECATED, category=DeprecationWarning)
    namespace: dict[str, object] = {"__name__": "__main__"}
    results = []
    status = 0
    for block in blocks:
        out = io.StringIO()
        try:
            code = compile(block["code"], block["where"], "exec")
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
        except BaseException:
            sys.stderr.write(f"--- the example at {block['where']} failed:\n")
            traceback.print_exc()
            sys.stderr.write(f"--- it printed:\n{out.getvalue()}")
            status = 1
            break
        finally:
            results.append({"where": block["where"], "stdout": out.getvalue()})
    with open(results_file, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
