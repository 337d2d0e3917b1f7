"""The ports that tests hand to servers in other processes: free, below the ephemeral range, one share per worker."""

from __future__ import annotations

import socket

import pytest

from tests.ports import LOWEST, _ephemeral_start, first_free, free_port, worker_share


def test_workers_get_disjoint_shares_below_the_ephemeral_range():
    shares = [worker_share(f"gw{index}", "3") for index in range(3)]
    ports = [set(share) for share in shares]
    assert not ports[0] & ports[1] and not ports[0] & ports[2] and not ports[1] & ports[2]
    assert min(shares[0]) == LOWEST and max(shares[2]) < _ephemeral_start()
    assert worker_share(None, None) == range(LOWEST, _ephemeral_start())


def test_too_many_workers_are_refused():
    with pytest.raises(ValueError, match="among 200 workers"):
        worker_share("gw0", "200")
    with pytest.raises(ValueError, match="worker 'gw2'"):
        worker_share("gw2", "2")


def test_free_ports_can_be_bound_and_differ():
    first, second = free_port(), free_port()
    assert first != second
    for port in (first, second):
        assert LOWEST <= port < _ephemeral_start()
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()


def test_a_held_port_is_passed_over():
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        taken = held.getsockname()[1]
        other = free_port()
        assert first_free([taken, other]) == other
        assert first_free([taken]) is None
