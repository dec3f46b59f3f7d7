"""Threads and one shelf (docs/store.md, kv_backend.shelve): shared without writeback, one each with it."""

from __future__ import annotations

import threading

import kv_backend.shelve as kshelve

THREADS, ROUNDS = 4, 400


def test_threads_share_a_shelf_without_writeback(tmp_path):
    errors: list[BaseException] = []
    with kshelve.open(str(tmp_path / "shelf")) as shelf:

        def work(t: int) -> None:
            try:
                for i in range(ROUNDS):
                    shelf[f"t{t}-{i % 20}"] = [t, i]
                    assert shelf[f"t{t}-{i % 20}"] == [t, i]
                    shelf.setdefault(f"shared{i % 5}", t)
                    shelf.pop(f"shared{(i + 2) % 5}", None)
                    if i % 100 == 0:
                        shelf.update({f"u{t}": i})
                        assert len(list(shelf.items())) >= 1
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for t in range(THREADS):
            assert shelf[f"t{t}-19"] == [t, ROUNDS - 1]
            assert shelf[f"u{t}"] == 300


def test_an_object_kept_across_sync_is_no_longer_written_back(tmp_path):
    # What a writeback shelf shared by threads does to the thread that holds an object while
    # another thread syncs; shown here in one thread.
    path = str(tmp_path / "shelf")
    with kshelve.open(path, writeback=True) as shelf:
        shelf["list"] = [1]
        held = shelf["list"]
        held.append(2)
        shelf.sync()  # written back, and dropped from the cache
        held.append(3)  # changes an object the shelf no longer tracks
    with kshelve.open(path, "r") as shelf:
        assert shelf["list"] == [1, 2]


def test_threads_with_their_own_writeback_shelves_keep_their_changes(tmp_path):
    path = str(tmp_path / "shelf")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            with kshelve.open(path, writeback=True) as shelf:
                for i in range(ROUNDS):
                    shelf.setdefault(f"t{t}", []).append(i)
                    if i % 50 == 49:
                        shelf.sync()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with kshelve.open(path, "r") as shelf:
        assert all(shelf[f"t{t}"] == list(range(ROUNDS)) for t in range(THREADS))
