"""The board on which gunicorn workers take turns with connections (registry/serving.py)."""

import os

import pytest

from registry import serving


@pytest.fixture
def board():
    return serving.ConnectionBoard()


def test_a_worker_alone_has_no_one_to_wait_for(board):
    slot = board.claim(age=1)
    board.publish(slot, 5)
    assert board.fewest_elsewhere(slot) is None


def test_the_fewest_held_by_another_live_worker(board):
    first, second, third = board.claim(1), board.claim(2), board.claim(3)
    board.publish(first, 9)
    board.publish(second, 7)
    board.publish(third, 8)
    assert board.fewest_elsewhere(first) == 7
    assert board.fewest_elsewhere(second) == 8
    board.release(third)  # stopping: no longer takes a turn
    assert board.fewest_elsewhere(second) == 9


def test_a_silent_worker_holds_no_turn(board, monkeypatch):
    first, second = board.claim(1), board.claim(2)
    board.publish(second, 0)
    now = serving._now_ms()
    monkeypatch.setattr(serving, "_now_ms", lambda: now + int(serving.SILENT_SECONDS * 1000) + 1)
    board.seen(first)
    assert board.fewest_elsewhere(first) is None  # the second hung or died without releasing
    board.seen(second)
    assert board.fewest_elsewhere(first) == 0


def test_a_new_worker_takes_over_a_slot_afresh(board):
    old = board.claim(3)
    board.publish(old, 12)
    board.release(old)
    other = board.claim(4)
    assert board.claim(3 + board.SLOTS) == old  # slots go by age; the old worker is gone
    assert board.fewest_elsewhere(other) == 0


def test_the_board_is_shared_with_processes_forked_after_it(board):
    slot = board.claim(1)
    pid = os.fork()
    if pid == 0:  # the child publishes, as a worker does
        board.publish(board.claim(2), 4)
        os._exit(0)
    os.waitpid(pid, 0)
    assert board.fewest_elsewhere(slot) == 4
