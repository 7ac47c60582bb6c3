"""The seed's producers alone, in their own process: put, then join() until another process consumed all."""

import asyncio
import random
import sys
import time

from asyncq import RedisQueue
from tests.seed.asyncq_redis import produce


async def main(nprod: int) -> None:
    q = RedisQueue()
    await asyncio.gather(*(produce(n, q) for n in range(nprod)))
    print("producers done", flush=True)
    await q.join()
    print(f"joined at {time.time():.6f}", flush=True)
    await q.close()


if __name__ == "__main__":
    random.seed(444)  # as the seed program does: the same items every run (and never none)
    asyncio.run(main(int(sys.argv[1])))
