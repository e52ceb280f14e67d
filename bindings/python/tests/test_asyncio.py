# test_asyncio.py: `await run` and `async for ev in run` under asyncio.
import asyncio
import os
import time

import pytest

import troupe
from conftest import WORKFLOWS, lua

SLEEPY = lua("troupe.sleep(input.seconds or 30)\nreturn 'woke'", name="sleepy")


def test_await_run_returns_the_output(host):
    async def main():
        return await host.run_source(lua("troupe.sleep(0.1)\nreturn { answer = 42 }"))

    assert asyncio.run(main()) == {"answer": 42}


def test_async_for_streams_every_event_then_await_gives_the_result(host):
    async def main():
        run = host.run(os.path.join(WORKFLOWS, "pr_review.lua"))
        types = [ev.type async for ev in run]
        return types, await run

    types, output = asyncio.run(main())
    assert types[0] == "run.started" and types[-1] == "run.finished"
    assert types.count("step.finished") == 4
    assert "Review" in output


def test_await_of_a_failing_run_raises_workflow_error(host):
    async def main():
        await host.run_source(lua("error('async boom')"))

    with pytest.raises(troupe.WorkflowError) as info:
        asyncio.run(main())
    assert "async boom" in info.value.message


def test_the_event_loop_stays_free_while_a_run_is_awaited(host):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        result = await host.run_source(SLEEPY, input={"seconds": 0.5})
        t.cancel()
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result == "woke"
    assert ticks >= 5  # the loop kept running other tasks while the run slept


def test_cancelling_the_awaiting_task_cancels_the_run(host):
    async def main():
        run = host.run_source(SLEEPY)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(run, 0.3)
        return run

    t0 = time.monotonic()
    run = asyncio.run(main())
    assert run.wait(10)
    assert run.status == "cancelled"
    assert time.monotonic() - t0 < 5


def test_several_runs_awaited_together_with_gather(host):
    async def main():
        runs = [host.run_source(lua(f"troupe.sleep(0.05 * {i})\nreturn {i}")) for i in range(8)]
        return await asyncio.gather(*runs)

    assert asyncio.run(main()) == list(range(8))
