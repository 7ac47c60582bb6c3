"""The seed's consumers alone, in their own process, until SIGTERM."""

import asyncio
import signal
import sys

from asyncq import RedisQueue
from tests.seed.asyncq_redis import consume


async def main(ncon: int) -> None:
    q = RedisQueue()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumers = [asyncio.create_task(consume(n, q)) for n in range(ncon)]
    await stop.wait()
    for c in consumers:
        c.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    await q.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
