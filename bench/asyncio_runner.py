#!/usr/bin/env python3
"""A hand-written asyncio + aiohttp runner, the baseline baton is measured against.

It runs a workflow from the JSON twin that bench/gen.py writes, the way a
careful engineer would without baton: a semaphore caps the agent calls in
flight, each step is started the moment its last dependency finishes, its
input is rendered by substituting `{{steps.ID.output}}`, and its result is
written to OUT/steps/ID.json atomically (temporary file, fsync, rename,
fsync of the folder) before its dependents start. Final outputs are printed as
`{"outputs": {...}, "missing": {}}`, the shape of `baton run --json`.

    AGENTAI_API_KEY=k python bench/asyncio_runner.py WF.json --out DIR \
        --concurrency 64 --base-url http://127.0.0.1:PORT/v1

Writes go to a thread pool so fsync does not stall the event loop.
"""

import argparse
import asyncio
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp

REF = re.compile(r"\{\{steps\.([A-Za-z0-9_-]{1,64})\.output\}\}")


class StepFailed(Exception):
    pass


def render(template, outputs):
    return REF.sub(lambda m: outputs[m.group(1)], template)


def write_atomically(path, data):
    """Temporary file, fsync, rename, fsync of the folder: what baton does."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class Runner:
    def __init__(self, workflow, args, session):
        self.steps = workflow["steps"]
        self.url = args.base_url.rstrip("/") + "/action/invoke_agent"
        self.session = session
        self.semaphore = asyncio.Semaphore(args.concurrency)
        self.writer = ThreadPoolExecutor(max_workers=min(args.concurrency, 32))
        self.step_dir = args.out / "steps"
        self.outputs = {}
        self.deps = {sid: set(REF.findall(s["input"])) for sid, s in self.steps.items()}
        self.children = {sid: [] for sid in self.steps}
        for sid, parents in self.deps.items():
            for parent in parents:
                self.children[parent].append(sid)
        self.waiting = {sid: len(parents) for sid, parents in self.deps.items()}
        self.tasks = set()
        self.done = asyncio.Event()
        self.failure = None

    async def run(self):
        self.step_dir.mkdir(parents=True, exist_ok=True)
        for sid, count in self.waiting.items():
            if count == 0:
                self.start(sid)
        if self.steps:
            await self.done.wait()
        self.writer.shutdown()
        if self.failure:
            raise self.failure

    def start(self, sid):
        task = asyncio.create_task(self.step(sid))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def step(self, sid):
        try:
            output = await self.call(sid)
            await self.persist(sid, output)
        except Exception as err:  # noqa: BLE001 - any failure ends the run
            self.failure = StepFailed(f"step {sid} failed: {err!r}")
            self.done.set()
            return
        self.outputs[sid] = output
        if len(self.outputs) == len(self.steps):
            self.done.set()
        for child in self.children[sid]:
            self.waiting[child] -= 1
            if self.waiting[child] == 0:
                self.start(child)

    async def call(self, sid):
        step = self.steps[sid]
        body = {"id": step["agent"], "input": render(step["input"], self.outputs)}
        async with self.semaphore, self.session.post(self.url, json=body) as response:
            reply = await response.json(content_type=None)
        if response.status != 200 or reply.get("status") != 200:
            raise StepFailed(f"agent answered {response.status}: {reply}")
        return reply["response"]

    async def persist(self, sid, output):
        record = {"step": sid, "agent": self.steps[sid]["agent"], "output": output}
        data = json.dumps(record).encode()
        path = self.step_dir / f"{sid}.json"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.writer, write_atomically, path, data)


async def main_async(args):
    workflow = json.loads(args.workflow.read_text())
    key = os.environ.get("AGENTAI_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        runner = Runner(workflow, args, session)
        await runner.run()
    outputs = {name: render(t, runner.outputs) for name, t in workflow["outputs"].items()}
    return {"outputs": outputs, "missing": {}}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow", type=Path, help="JSON twin written by gen.py")
    parser.add_argument("--out", type=Path, required=True, help="folder for step results")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:PORT/v1")
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(main_async(args))
    except StepFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
