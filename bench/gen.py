#!/usr/bin/env python3
"""Generate the benchmark's workflows, deterministically from a seed.

Each shape is written twice into the output folder: SHAPE.yaml in baton's
workflow format, and SHAPE.json, the same steps as plain JSON, which the
asyncio runner reads (so its timings include no YAML parsing, which can only
flatter it). Inputs use one template construct only, `{{steps.ID.output}}`,
so plain string substitution renders them exactly as Handlebars does.

Agent ids name their latency for the fake server: `sleep20` answers after
20 ms, `sleep0` at once.

    python3 bench/gen.py --out /tmp/wf --seed 7 chain fanout
"""

import argparse
import json
import random
import re
import sys
from collections import deque
from pathlib import Path

REF = re.compile(r"\{\{steps\.([A-Za-z0-9_-]{1,64})\.output\}\}")

# Full sizes: (steps or width, layers). Quick sizes keep every shape but
# finish in seconds.
SIZES = {
    "full": {
        "chain": 100,
        "fanout": 500,
        "layered": (100, 20),
        "flat": 10_000,
        "huge": (25_000, 4),
    },
    "quick": {
        "chain": 20,
        "fanout": 100,
        "layered": (20, 10),
        "flat": 1_000,
        "huge": (2_500, 4),
    },
}

SHAPES = list(SIZES["full"])

# Concurrency each shape runs at. At these values the ideal below is
# reachable: fan-out and layers fit in one wave each.
CONCURRENCY = {"chain": 8, "fanout": 500, "layered": 100, "flat": 64, "huge": 64}


def ref(step_id):
    return "{{steps." + step_id + ".output}}"


def join_refs(ids):
    return "\n".join(ref(i) for i in ids)


def chain(n, latency, rng):
    steps = {"s0": (f"sleep{latency}", "start")}
    for i in range(1, n):
        steps[f"s{i}"] = (f"sleep{latency}", ref(f"s{i - 1}"))
    return steps, {"final": ref(f"s{n - 1}")}


def fanout(width, latency, rng):
    steps = {"src": (f"sleep{latency}", "fan out")}
    workers = [f"w{i}" for i in range(width)]
    for i, worker in enumerate(workers):
        steps[worker] = (f"sleep{latency}", f"part {i} of {ref('src')}")
    steps["join"] = (f"sleep{latency}", join_refs(workers))
    return steps, {"final": ref("join")}


def layered(size, latency, rng):
    width, depth = size
    steps, previous = layers(width, depth, f"sleep{latency}", rng, (1, 3))
    return steps, {f"last{i}": ref(sid) for i, sid in enumerate(previous)}


def flat(n, latency, rng):
    steps = {f"t{i}": ("sleep0", f"item {i}") for i in range(n)}
    picks = [0, n // 2, n - 1]
    return steps, {f"t{i}": ref(f"t{i}") for i in picks}


def huge(size, latency, rng):
    width, depth = size
    steps, previous = layers(width, depth, "sleep0", rng, (1, 2))
    picks = [previous[0], previous[width // 2], previous[-1]]
    return steps, {sid: ref(sid) for sid in picks}


def layers(width, depth, agent, rng, parents):
    """Steps in `depth` layers of `width`, each with parents in the layer above.

    Every step below the top has between parents[0] and parents[1] parents,
    and every step above the bottom has at least one child, so no step is
    idle work that a runner could skip. Returns the steps and the last layer.
    """
    digits = len(str(width - 1))
    steps = {}
    previous = []
    for layer in range(depth):
        current = [f"l{layer}n{i:0{digits}d}" for i in range(width)]
        cover = previous[:]
        rng.shuffle(cover)
        for i, sid in enumerate(current):
            if not previous:
                steps[sid] = (agent, f"root {sid}")
                continue
            count = rng.randint(*parents)
            chosen = [cover[i]] if i < len(cover) else []
            others = [p for p in rng.sample(previous, count) if p not in chosen]
            chosen += others[: count - len(chosen)]
            steps[sid] = (agent, join_refs(chosen))
        previous = current
    return steps, previous


BUILDERS = {
    "chain": chain,
    "fanout": fanout,
    "layered": layered,
    "flat": flat,
    "huge": huge,
}


def build(shape, quick, latency, seed):
    """The workflow of `shape` as a dict: name, concurrency, steps, outputs."""
    rng = random.Random(f"{seed}-{shape}")
    size = SIZES["quick" if quick else "full"][shape]
    steps, outputs = BUILDERS[shape](size, latency, rng)
    return {
        "name": f"bench-{shape}",
        "concurrency": CONCURRENCY[shape],
        "steps": {sid: {"agent": a, "input": text} for sid, (a, text) in steps.items()},
        "outputs": outputs,
    }


def to_yaml(workflow):
    """Render in baton's format. JSON strings are valid YAML double-quoted scalars."""
    q = json.dumps
    lines = [f"name: {q(workflow['name'])}", f"concurrency: {workflow['concurrency']}", "steps:"]
    for sid, step in workflow["steps"].items():
        lines.append(f"  {sid}:")
        lines.append(f"    agent: {q(step['agent'])}")
        lines.append(f"    input: {q(step['input'])}")
    lines.append("outputs:")
    for name, template in workflow["outputs"].items():
        lines.append(f"  {name}: {q(template)}")
    return "\n".join(lines) + "\n"


def dependencies(workflow):
    return {sid: set(REF.findall(step["input"])) for sid, step in workflow["steps"].items()}


def latency_of(agent):
    match = re.match(r"sleep(\d+)", agent)
    return int(match.group(1)) / 1000 if match else 0.0


def ideal_seconds(workflow, concurrency):
    """The best wall time any runner could reach, in seconds.

    It is the larger of the critical path (latencies summed along the
    slowest chain of dependencies) and the total latency spread evenly over
    `concurrency` slots.
    """
    deps = dependencies(workflow)
    latency = {sid: latency_of(s["agent"]) for sid, s in workflow["steps"].items()}
    finish = {}
    for sid in topological_order(deps):
        start = max((finish[d] for d in deps[sid]), default=0.0)
        finish[sid] = start + latency[sid]
    critical = max(finish.values(), default=0.0)
    return max(critical, sum(latency.values()) / concurrency)


def topological_order(deps):
    children = {sid: [] for sid in deps}
    waiting = {sid: len(d) for sid, d in deps.items()}
    for sid, parents in deps.items():
        for parent in parents:
            children[parent].append(sid)
    ready = deque(sid for sid, n in waiting.items() if n == 0)
    order = []
    while ready:
        sid = ready.popleft()
        order.append(sid)
        for child in children[sid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) != len(deps):
        raise ValueError("workflow has a cycle")
    return order


def write(shape, out, quick, latency, seed):
    workflow = build(shape, quick, latency, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{shape}.yaml").write_text(to_yaml(workflow))
    (out / f"{shape}.json").write_text(json.dumps(workflow))
    return workflow


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapes", nargs="*", metavar="SHAPE", help=", ".join(SHAPES))
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--seed", type=int, default=1, help="seed for the layered shapes")
    parser.add_argument("--latency", type=int, default=20, help="ms per step of slow shapes")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.shapes) - set(SHAPES))
    if unknown:
        parser.error(f"unknown shape {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    for shape in args.shapes or SHAPES:
        workflow = write(shape, args.out, args.quick, args.latency, args.seed)
        print(f"{shape}: {len(workflow['steps'])} steps", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
