"""redis-py 8 through Tidepool: the scenarios of the Redis engine's acceptance tests.

Usage: redis_clients.py SCENARIO HOST PORT [PROTOCOL]
Each scenario raises (non-zero exit, traceback) on any wrong answer and prints "ok <details>".
"""

import sys
import threading
import time


import redis

from common import must, run_threads

HOST, PORT = None, None


def client(protocol=3, **kw):
    kw.setdefault("socket_timeout", 15)
    kw.setdefault("socket_connect_timeout", 5)
    return redis.Redis(host=HOST, port=PORT, protocol=protocol, **kw)



def concurrency(_protocol):
    """200 clients, half RESP3 and half RESP2, each on its own connection."""
    iterations = 25
    start = threading.Barrier(200)

    def work(i):
        r = client(protocol=3 if i % 2 == 0 else 2, single_connection_client=True)
        start.wait()
        for j in range(iterations):
            key = f"c:{i}:{j}"
            assert r.set(key, f"v{i}.{j}") is True
            assert r.get(key) == f"v{i}.{j}".encode(), key
            assert r.incr(f"count:{i}") == j + 1
            r.incr("count:all")
        assert r.get(f"count:{i}") == str(iterations).encode()
        r.close()

    r = client()
    r.delete("count:all")
    must(run_threads(200, work))
    total = int(r.get("count:all"))
    assert total == 200 * iterations, total
    print(f"ok total={total}")


def transactions(protocol):
    r = client(protocol)
    r.delete("tx:a", "tx:counter")
    pipe = r.pipeline(transaction=True)
    pipe.set("tx:a", 1).incr("tx:a").incr("tx:a").get("tx:a")
    assert pipe.execute() == [True, 2, 3, b"3"]

    per_thread = 25

    def contend(i):
        c = client(protocol)
        for _ in range(per_thread):

            def incr(p):
                value = int(p.get("tx:counter") or 0)
                p.multi()
                p.set("tx:counter", value + 1)

            c.transaction(incr, "tx:counter")
        c.close()

    must(run_threads(20, contend))
    final = int(r.get("tx:counter"))
    assert final == 20 * per_thread, final
    print(f"ok counter={final}")


def blocking(protocol):
    r = client(protocol)
    r.delete("bl:queue")
    got = {}

    def waiter():
        c = client(protocol, socket_timeout=60)
        got["item"] = c.blpop("bl:queue", timeout=0)

    w = threading.Thread(target=waiter)
    w.start()
    # CLIENT LIST is the upstream's: the waiter's dedicated connection shows cmd=blpop.
    deadline = time.time() + 10
    while not any(c.get("cmd") == "blpop" for c in r.client_list()):
        assert time.time() < deadline, "BLPOP never reached the upstream"
        time.sleep(0.01)

    def others(i):
        c = client(protocol, single_connection_client=True)
        for j in range(20):
            c.set(f"bl:{i}:{j}", j)
            assert c.get(f"bl:{i}:{j}") == str(j).encode()
        c.close()

    must(run_threads(50, others))
    assert w.is_alive(), "BLPOP returned before anything was pushed"
    assert "item" not in got
    r.lpush("bl:queue", "x")
    w.join(15)
    assert got.get("item") == (b"bl:queue", b"x") or got.get("item") == [b"bl:queue", b"x"], got
    print("ok blpop-unblocked-after-50-clients")


def pubsub(protocol):
    sub = client(protocol)
    p = sub.pubsub()
    p.subscribe("ps:ch")
    p.psubscribe("ps:pat.*")
    confirmations = []
    deadline = time.time() + 10
    while len(confirmations) < 2 and time.time() < deadline:
        m = p.get_message(timeout=1)
        if m:
            confirmations.append(m["type"])
    assert sorted(confirmations) == ["psubscribe", "subscribe"], confirmations
    pub = client(protocol)
    assert pub.publish("ps:ch", "hello") == 1
    assert pub.publish("ps:pat.x", "world") == 1
    received = []
    while len(received) < 2 and time.time() < deadline:
        m = p.get_message(timeout=1)
        if m and m["type"] in ("message", "pmessage"):
            received.append((m["channel"], m["data"]))
    assert received == [(b"ps:ch", b"hello"), (b"ps:pat.x", b"world")], received
    p.unsubscribe()
    p.punsubscribe()
    p.close()
    # The connection that was subscribed went back clean: plain commands work everywhere.
    assert pub.set("ps:after", "1") and pub.get("ps:after") == b"1"
    print("ok pubsub")


def select(protocol):
    r0 = client(protocol, db=0)
    r5 = client(protocol, db=5)
    r0.set("sel:k", "zero")
    r5.set("sel:k", "five")

    def check(i):
        c0 = client(protocol, db=0, single_connection_client=True)
        c5 = client(protocol, db=5, single_connection_client=True)
        for _ in range(20):
            assert c0.get("sel:k") == b"zero"
            assert c5.get("sel:k") == b"five"

    must(run_threads(20, check))
    r0.delete("sel:k")
    assert r5.get("sel:k") == b"five", "FLUSH/DEL ran in the client's own db"
    print("ok select")


def setname(protocol):
    def named(i):
        c = client(protocol, client_name=f"worker-{i}", single_connection_client=True)
        for _ in range(10):
            # redis-py decodes GETNAME to str under RESP2 only (its own response callbacks).
            assert c.client_getname() in (f"worker-{i}", f"worker-{i}".encode()), c.client_getname()
            c.incr(f"name:{i}")

    must(run_threads(30, named))
    anonymous = client(protocol, single_connection_client=True)
    assert anonymous.client_getname() is None
    print("ok setname")


def refusals(protocol):
    r = client(protocol, single_connection_client=True)
    try:
        r.execute_command("MONITOR")
        raise AssertionError("MONITOR was not refused")
    except redis.ResponseError as e:
        assert "MONITOR is not supported through the proxy" in str(e), e
    assert r.ping() is True, "the connection is still usable after a refusal"
    try:
        r.execute_command("NOSUCHCOMMAND", "x")
        raise AssertionError("unknown command accepted")
    except redis.ResponseError as e:
        assert "unknown command" in str(e), e
    assert r.set("ref:k", "v") and r.get("ref:k") == b"v"
    print("ok refusals")


SCENARIOS = {
    f.__name__: f for f in (concurrency, transactions, blocking, pubsub, select, setname, refusals)
}

if __name__ == "__main__":
    name, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
    protocol = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    assert redis.__version__.startswith("8."), f"redis-py 8 expected, got {redis.__version__}"
    SCENARIOS[name](protocol)
