"""How many shopper conversations the bot gets right without a model: `kefu test` over conversation suites, for
this tree and (optionally) an older one, side by side, with a breakdown per file (one file per class of problem).

Suites: the demo's own (``kefu/demo/tests``), the tuning half and the held-out half of ``evals/conversations``
(the held-out half was never read while tuning: report it separately). A conversation passes when every one of
its steps does.

    .venv/bin/python -m benchmarks.understanding --baseline /tmp/kefu-before \
        --json benchmarks/results/understanding.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES = {
    "demo": ROOT / "kefu/demo/tests",
    "tuning": ROOT / "evals/conversations/tuning",
    "heldout": ROOT / "evals/conversations/heldout",
}


_TOP_LEVEL_BOT = re.compile(r"^bot:.*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SuiteResult:
    tree: str
    suite: str
    conversations: int
    passed: int
    by_file: dict[str, tuple[int, int]]  # file stem → (passed, conversations)

    @property
    def rate(self) -> float:
        return self.passed / self.conversations if self.conversations else 0.0


def run_suite(tree: Path, label: str, suite: str, path: Path) -> SuiteResult:
    """`kefu test --json` from ``tree``'s code and demo bot over the files at ``path`` (no model configured)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env["PYTHONPATH"] = str(tree)
    with tempfile.TemporaryDirectory() as tmp:
        # The files name the demo bot of *this* tree (`bot:`); each tree must run its own demo bot instead.
        for source in sorted(path.glob("*.yaml")):
            text = _TOP_LEVEL_BOT.sub("", source.read_text(encoding="utf-8"))
            (Path(tmp) / source.name).write_text(text, encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "kefu", "test", "--json", "--bot-dir", str(tree / "kefu/demo"), tmp],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        report = json.loads(proc.stdout)
    except ValueError as exc:
        raise SystemExit(f"{label}/{suite}: kefu test printed no JSON:\n{proc.stderr[-2000:]}") from exc
    outcome: dict[tuple[str, str], bool] = {}
    for step in report.get("steps", []):
        key = (step["file"], step["conversation"])
        outcome[key] = outcome.get(key, True) and bool(step["passed"])
    for problem in report.get("errors", []) or []:  # a file that did not load counts as failed conversations
        print(f"warning: {label}/{suite}: {problem}", file=sys.stderr)
    by_file: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (file, _), ok in outcome.items():
        counts = by_file[Path(file).stem]
        counts[0] += int(ok)
        counts[1] += 1
    return SuiteResult(
        tree=label,
        suite=suite,
        conversations=len(outcome),
        passed=sum(outcome.values()),
        by_file={k: (v[0], v[1]) for k, v in sorted(by_file.items())},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="an older tree (e.g. git archive REV | tar -x -C DIR)")
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="default: all")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    trees = [("after", ROOT)] + ([("before", args.baseline.resolve())] if args.baseline else [])
    results: list[SuiteResult] = []
    for suite in args.suite or list(SUITES):
        if not SUITES[suite].exists():
            print(f"skipping {suite}: {SUITES[suite]} does not exist", file=sys.stderr)
            continue
        for label, tree in trees:
            results.append(run_suite(tree, label, suite, SUITES[suite]))
    print("| suite | tree | conversations | passed | pass rate |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r.suite} | {r.tree} | {r.conversations} | {r.passed} | {r.rate:.0%} |")
    print()
    print("| suite | file | " + " | ".join(label for label, _ in trees) + " |")
    print("|---|---|" + "---|" * len(trees))
    for suite in dict.fromkeys(r.suite for r in results):
        rows = [r for r in results if r.suite == suite]
        for stem in sorted({s for r in rows for s in r.by_file}):
            cells = [f"{r.by_file[stem][0]}/{r.by_file[stem][1]}" if stem in r.by_file else "–" for r in rows]
            print(f"| {suite} | {stem} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) | {"rate": r.rate} for r in results], indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
