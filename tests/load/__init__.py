"""Load tests: Locust as a library, headless, against a local stack on 127.0.0.1 (`python -m tests.load`).

- `__main__`: the command line; without `--url` it starts its own local stack (fake OpenAI, rate limits
  lifted) and runs the driver against it in a child process.
- `driver`: the Locust run (users, load shapes, thresholds); imported only in that child, because Locust
  monkey-patches the interpreter (gevent) on import.
- `report`: the figures of a run (exact percentiles from every request) and the summary table.
"""
