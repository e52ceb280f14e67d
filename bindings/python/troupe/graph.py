"""troupe.graph: a picture of a run — its steps, parallel branches and joins — from step keys.

Step keys say where each step ran: ``"3"`` is step 3 of the root, ``"2.1/1"`` step 1 of branch 1
of the join at step 2. :func:`layout` turns a run's steps into positioned nodes and edges
(no drawing library needed); :func:`draw` draws them with matplotlib::

    from troupe import graph
    graph.draw(host.show(run.id))
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple


def _split(key: str) -> Tuple[str, int]:
    # "2.1/3" -> ("2.1", 3); "4" -> ("", 4)
    path, _, n = key.rpartition("/")
    return path, int(n)


def _parent(path: str) -> Tuple[str, int]:
    # a branch path "K.i" -> (join key K, branch i)
    join, _, i = path.rpartition(".")
    return join, int(i)


def layout(steps: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Positions for a run's steps (dicts with at least ``step_key``; ``kind``, ``agent``,
    ``status`` are used for labels).

    Returns ``{"nodes": [...], "edges": [(from_id, to_id), ...], "width": w, "height": h}``.
    A node is ``{"id", "x", "y", "kind", "label", "status"}``; kinds are the steps' own kinds
    plus ``"fork"`` and ``"join"`` for the two ends of a ``troupe.parallel``/``troupe.map``.
    Branches of a join are stacked downwards; x grows with the order of execution.
    """
    by_branch: Dict[str, Dict[int, Dict[str, Any]]] = {}
    joins: Dict[str, set] = {}
    for s in steps:
        path, n = _split(s["step_key"])
        by_branch.setdefault(path, {})[n] = s
        while path:  # register every enclosing join, up to the root
            join, i = _parent(path)
            joins.setdefault(join, set()).add(i)
            jpath, jn = _split(join)
            by_branch.setdefault(jpath, {}).setdefault(jn, {"step_key": join, "kind": "join"})
            path = jpath

    nodes: List[Dict[str, Any]] = []
    edges: List[Tuple[str, str]] = []

    def width(path: str) -> int:
        w = 0
        for n, s in by_branch.get(path, {}).items():
            key = s["step_key"]
            if key in joins:
                w += 2 + max(width(f"{key}.{i}") for i in joins[key])
            else:
                w += 1
        return w

    def height(path: str) -> int:
        h = 1
        for n, s in by_branch.get(path, {}).items():
            key = s["step_key"]
            if key in joins:
                h = max(h, sum(height(f"{key}.{i}") for i in sorted(joins[key])))
        return h

    def place(path: str, x: int, y: int, prev: Optional[str]) -> Tuple[int, Optional[str], Optional[str]]:
        """Lays out a branch from (x, y); returns (next x, first node id, last node id)."""
        first = None
        for n in sorted(by_branch.get(path, {})):
            s = by_branch[path][n]
            key = s["step_key"]
            if key in joins:
                fork_id, join_id = f"fork:{key}", f"join:{key}"
                nodes.append({"id": fork_id, "x": x, "y": y, "kind": "fork", "label": key, "status": ""})
                inner = max(width(f"{key}.{i}") for i in joins[key])
                nodes.append({"id": join_id, "x": x + inner + 1, "y": y, "kind": "join", "label": key, "status": ""})
                by = y
                for i in sorted(joins[key]):
                    bpath = f"{key}.{i}"
                    _, bfirst, blast = place(bpath, x + 1, by, None)
                    edges.append((fork_id, bfirst or join_id))
                    if blast:
                        edges.append((blast, join_id))
                    by += height(bpath)
                node_in, node_out, x = fork_id, join_id, x + inner + 2
            else:
                label = key
                who = s.get("agent") or ""
                if who:
                    label += " " + who
                elif s.get("kind"):
                    label += " " + s["kind"]
                node_id = f"step:{key}"
                nodes.append({"id": node_id, "x": x, "y": y, "kind": s.get("kind", ""), "label": label,
                              "status": s.get("status", "")})
                node_in = node_out = node_id
                x += 1
            if prev:
                edges.append((prev, node_in))
            first = first or node_in
            prev = node_out
        return x, first, prev

    x, _, _ = place("", 0, 0, None)
    return {"nodes": nodes, "edges": edges, "width": max(x, 1), "height": height("")}


_COLORS = {"succeeded": "#d6f5d6", "failed": "#f8d0d0", "cancelled": "#f5e6c8"}


def draw(run: Dict[str, Any], ax=None):
    """Draws a run (what ``host.show(run_id)`` returns, or a list of steps) with matplotlib;
    returns the Axes."""
    import matplotlib.pyplot as plt  # only needed for drawing

    steps = run["steps"] if isinstance(run, dict) else run
    g = layout(steps)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 2.2 * g["width"]), max(2, 1.3 * g["height"])))
    pos = {n["id"]: (n["x"], -n["y"]) for n in g["nodes"]}
    for a, b in g["edges"]:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        ax.annotate("", xy=(x2, y2), xytext=(x1, y1),
                    arrowprops={"arrowstyle": "->", "color": "#888888", "shrinkA": 14, "shrinkB": 14})
    for n in g["nodes"]:
        x, y = pos[n["id"]]
        if n["kind"] in ("fork", "join"):
            ax.plot([x], [y], marker="D", markersize=9, color="#4a6fa5")
            ax.text(x, y + 0.22, ("⇉ " if n["kind"] == "fork" else "⇶ ") + n["label"], ha="center",
                    fontsize=8, color="#4a6fa5")
        else:
            ax.text(x, y, n["label"], ha="center", va="center", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.4", "fc": _COLORS.get(n["status"], "#eeeeee"),
                          "ec": "#666666"})
    ax.set_xlim(-0.7, g["width"] - 0.3)
    ax.set_ylim(-g["height"] + 0.4, 0.7)
    ax.axis("off")
    title = run.get("workflow", "") if isinstance(run, dict) else ""
    if title:
        ax.set_title(f"{title} · run {run.get('id', '')}", fontsize=10)
    return ax
