"""Summaries of py-spy's collapsed stacks (``py-spy record --format raw -F --threads --idle``).

Each line is ``thread (TID);frame;frame;... COUNT`` with frames ``name (file:line)``. For the
API, only the process's main thread (TID == PID: the event loop) is counted. A sample whose
innermost frame is the selector's ``select`` is the loop waiting for I/O ("idle"); the rest is
where the CPU time of the process went. A worker runs its jobs in its pool's threads: its
profile is recorded with ``--gil`` (only samples of a thread holding the GIL, i.e. running
Python, whichever thread) and every thread is counted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Self time grouped by where the code lives (first match wins).
COMPONENTS = [
    ("authq api/", re.compile(r"(^|/)api/")),
    ("authq tasks/", re.compile(r"(^|/)tasks/")),
    ("authq worker/", re.compile(r"(^|/)worker/")),
    ("aiohttp", re.compile(r"(^|/)aiohttp/")),
    ("redis-py", re.compile(r"(^|/)redis/")),
    ("pydantic", re.compile(r"(^|/)pydantic(_core|_settings)?/")),
    ("cryptography", re.compile(r"(^|/)cryptography/")),
    ("celery", re.compile(r"(^|/)celery/")),
    ("kombu", re.compile(r"(^|/)kombu/")),
    ("yarl/multidict", re.compile(r"(^|/)(yarl|multidict|propcache)/")),
    ("asyncio", re.compile(r"(^|/)asyncio/")),
    ("logging", re.compile(r"(^|/)logging/")),
    ("json", re.compile(r"(^|/)json/")),
    ("uuid/secrets/hashlib", re.compile(r"(^|/)(uuid|secrets|hashlib|random)\.py")),
    ("socket/ssl/selectors", re.compile(r"(^|/)(socket|ssl|selectors)\.py")),
]


def component(file: str) -> str:
    for name, pattern in COMPONENTS:
        if pattern.search(file):
            return name
    return "other (stdlib, …)"


def is_idle(leaf: str) -> bool:
    """The selector waiting (``EpollSelector.select``), or a thread blocked on a lock/queue."""
    name, file = _split(leaf)
    return (file.endswith(("selectors.py", "eventio.py")) and name.endswith(("select", "poll"))) or (
        file.endswith("threading.py") and name.endswith("wait"))


def _split(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame)
    if not match:
        return frame, ""
    return match.group("name"), match.group("file")


AUTHQ_FILE = re.compile(r"^(api|tasks|worker)/")


def is_authq(frame: str) -> bool:
    return bool(AUTHQ_FILE.match(_split(frame)[1]))


@dataclass
class Node:
    count: int = 0
    children: dict[str, Node] = field(default_factory=dict)


@dataclass
class Profile:
    samples: int = 0
    idle: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    components: Counter[str] = field(default_factory=Counter)
    # authq's own frames only (library frames between them skipped), each path ending with the
    # first library call the deepest authq frame made: "where in authq's code the time went".
    tree: Node = field(default_factory=Node)

    def add_to_tree(self, frames: list[str], count: int) -> None:
        path: list[str] = []
        for n, frame in enumerate(frames):
            if is_authq(frame):
                path.append(frame)
            elif path and is_authq(frames[n - 1]):
                path.append(frame)  # the library call made from authq code: a leaf of the path
                if n + 1 < len(frames) and any(is_authq(f) for f in frames[n + 1:]):
                    path.pop()      # ... unless authq code runs deeper (a middleware chain): skip it
        node = self.tree
        node.count += count
        for frame in path:
            node = node.children.setdefault(frame, Node())
            node.count += count

    def tree_lines(self, min_pct: float = 2.0, max_depth: int = 12) -> list[dict[str, Any]]:
        busy = max(1, self.busy)
        out: list[dict[str, Any]] = []

        def walk(node: Node, depth: int) -> None:
            for frame, child in sorted(node.children.items(), key=lambda kv: -kv[1].count):
                pct = 100.0 * child.count / busy
                if pct < min_pct or depth > max_depth:
                    continue
                out.append({"depth": depth, "frame": frame, "pct": round(pct, 1)})
                walk(child, depth + 1)

        walk(self.tree, 0)
        return out

    @property
    def busy(self) -> int:
        return self.samples - self.idle

    def summary(self, note: str = "", top: int = 15) -> dict[str, Any]:
        busy = max(1, self.busy)

        def pct(n: int) -> float:
            return round(100.0 * n / busy, 1)

        # Frames on (nearly) every busy stack are the loop's scaffolding, not a hotspot.
        inclusive = [(f, n) for f, n in self.inclusive.most_common() if n < 0.9 * busy]
        return {
            "samples": self.samples, "idle_pct_of_all": round(100.0 * self.idle / max(1, self.samples), 1),
            "note": note or MAIN_THREAD_NOTE,
            "self": [{"frame": f, "pct": pct(n)} for f, n in self.self_time.most_common(top)],
            "inclusive": [{"frame": f, "pct": pct(n)} for f, n in inclusive[:top]],
            "components_self": [{"component": c, "pct": pct(n)} for c, n in self.components.most_common()],
            "authq_tree": self.tree_lines(),
        }


MAIN_THREAD_NOTE = "percentages are of the busy (non-idle) samples of the main thread"


def parse_collapsed(text: str, pid: int | None = None) -> Profile:
    """``pid``: count only that thread (the main thread's id is the process's); None: every thread."""
    profile = Profile()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            if pid is not None and not frames[0].startswith(f"thread ({pid})"):
                continue
            frames = frames[1:]
        if not frames:
            continue
        profile.samples += count
        leaf = frames[-1]
        if is_idle(leaf):
            profile.idle += count
            continue
        profile.self_time[leaf] += count
        profile.components[component(_split(leaf)[1])] += count
        for frame in set(frames):
            profile.inclusive[frame] += count
        profile.add_to_tree(frames, count)
    return profile


def render(title: str, summary: dict[str, Any], top: int = 12) -> str:
    lines = [f"{title}: {summary['samples']} samples, {summary['idle_pct_of_all']}% idle (waiting for work); "
             + ("% of the other samples (wall clock: on CPU or blocked in a call, e.g. a Redis reply):"
                if summary.get("note", MAIN_THREAD_NOTE) == MAIN_THREAD_NOTE else f"{summary['note']}:")]
    lines.append("  by component (self): " + ", ".join(
        f"{c['component']} {c['pct']}%" for c in summary["components_self"][:10]))
    lines.append("  top self:")
    lines += [f"    {e['pct']:5.1f}%  {e['frame']}" for e in summary["self"][:top]]
    lines.append("  top inclusive:")
    lines += [f"    {e['pct']:5.1f}%  {e['frame']}" for e in summary["inclusive"][:top]]
    if summary.get("authq_tree"):
        lines.append("  authq's code (inclusive; each path ends at the library call it makes):")
        lines += [f"    {e['pct']:5.1f}%  {'  ' * e['depth']}{e['frame']}" for e in summary["authq_tree"]]
    return "\n".join(lines)
