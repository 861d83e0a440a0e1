"""A shop worker: one real OS process serving a tiny HTTP/1.1 shop API on loopback.

In stateful mode sessions and carts live in this process's memory; in stateless mode
nothing survives between requests here: each request loads and saves its session in
Redis. Standard library only, never Django: spawn-to-ready is part of the lesson, so
this package imports nothing at all (`python -m` loads `__main__`, which loads the rest).

    python -m playground.worker --name worker-1 --mode stateful --port 0
    python -m playground.worker --name worker-2 --mode stateless --port 0 \\
        --redis-url redis://127.0.0.1:6379/0 --prefix lab:ab12cd:

It prints "READY <port>" on stdout once it accepts connections, exits 0 after draining
on SIGTERM, and exits by itself when its parent process goes away.

`resp` speaks to Redis, `sessions` keeps sessions (in memory or in Redis), `shop` is the
shop's API, `server` its HTTP/1.1 server, `life` starts, drains and ends the process.
With `--workload chat`, `chat` serves WebSocket rooms at /chat/<room> (in memory, or in
Redis Streams): the one module that uses a library, wsproto, loaded by chat workers only.
"""
