"""`python -m examples.ppid_chain`: print the PPID chain walk-through."""

import asyncio

from . import run

asyncio.run(run(print))
