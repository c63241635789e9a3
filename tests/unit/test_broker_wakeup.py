"""The broker loops' Wakeup pipe: a wake() after close() writes nowhere.

Job threads finishing after their worker stopped still call wake(); the
pipe's descriptor numbers are then free, and the next pipe, socket or file
the process opens takes them. A byte written there would go into another
connection's stream (a stray byte in an AMQP connection, or in a database's).
"""

from __future__ import annotations

import os
import select

from entropy.broker.connection import Wakeup


def test_a_wake_after_close_writes_into_no_reused_descriptor() -> None:
    wakeup = Wakeup()
    old = wakeup.fileno()
    wakeup.close()
    read, write = os.pipe()  # the lowest free numbers: the ones close() just gave back
    os.set_blocking(read, False)
    try:
        assert old in (read, write)
        wakeup.wake()  # into the new pipe, were it not closed
        os.write(write, b"mine")
        wakeup.clear()  # out of the new pipe, were it not closed
        assert os.read(read, 16) == b"mine"  # nothing before it, nothing taken from it
    finally:
        os.close(read)
        os.close(write)


def test_a_wake_makes_select_return_until_cleared() -> None:
    wakeup = Wakeup()
    try:
        assert select.select([wakeup], [], [], 0)[0] == []
        wakeup.wake()
        wakeup.wake()  # one is pending: no second byte
        assert select.select([wakeup], [], [], 0)[0] == [wakeup]
        wakeup.clear()
        assert select.select([wakeup], [], [], 0)[0] == []
    finally:
        wakeup.close()
