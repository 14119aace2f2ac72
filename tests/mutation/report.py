"""Summarise a mutmut run: the score per module and every surviving mutant with its diff (printed as Markdown)."""

import re
import subprocess
import sys
from collections import Counter, defaultdict

MUTMUT = [sys.executable, "-m", "mutmut"]
MODULE = re.compile(
    r"^(.*?)\.x[_\u01c1]"
)  # mutmut's names: module.x_function__mutmut_N, module.xǁClassǁmethod__mutmut_N


def main() -> None:
    lines = subprocess.run([*MUTMUT, "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    status = dict(line.strip().rsplit(": ", 1) for line in lines.splitlines() if ": " in line)
    per_module: dict[str, Counter] = defaultdict(Counter)
    for name, state in status.items():
        if state == "not checked":
            continue
        per_module[MODULE.match(name)[1]][state] += 1
    print("| module | mutants | killed | survived | other | score |\n|---|---|---|---|---|---|")
    total = Counter()
    for module, counts in sorted(per_module.items()):
        total += counts
        n, killed, survived = sum(counts.values()), counts["killed"], counts["survived"]
        print(f"| {module} | {n} | {killed} | {survived} | {n - killed - survived} | {killed / max(n, 1):.1%} |")
    n = sum(total.values())
    print(
        f"| all | {n} | {total['killed']} | {total['survived']} | {n - total['killed'] - total['survived']} "
        f"| {total['killed'] / max(n, 1):.1%} |\n"
    )
    for name, state in sorted(status.items()):
        if state not in ("killed", "not checked"):
            diff = subprocess.run([*MUTMUT, "show", name], capture_output=True, text=True, check=False).stdout
            print(f"### {name} ({state})\n```diff\n{diff.strip()}\n```\n")


if __name__ == "__main__":
    main()
