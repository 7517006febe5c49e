"""Helpers the end-to-end scenarios share."""

import threading


def run_threads(n, target):
    """Runs target(i) for i in range(n) on n threads; returns the failures as text."""
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - every failure is reported
            errors.append(f"thread {i}: {e!r}")

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def must(errors):
    assert not errors, f"{len(errors)} failures:\n" + "\n".join(errors[:10])
