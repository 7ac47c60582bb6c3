"""The multi-machine harness itself: hosts reach each other through the switch, and a cut cuts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import netns

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


def test_hosts_reach_redis_until_their_link_is_cut(tmp_path: Path) -> None:
    netns.skip_unless_available()
    with netns.Network(3) as net:
        host_a, host_b, host_c = net.hosts
        assert len({h.netns for h in net.hosts}) == 3
        assert len({h.ip for h in net.hosts}) == 3
        redis = netns.start_redis(host_a, tmp_path)
        assert redis.ping(frm=host_b)
        assert redis.ping(frm=host_c)

        host_c.link_down()
        assert not redis.ping(frm=host_c, timeout=1.0)
        assert redis.ping(frm=host_b), "cutting one host cut another"
        host_c.link_up()
        assert redis.ping(frm=host_c)

        names = set(netns.namespaces())
        assert {net.switch, *(h.netns for h in net.hosts)} <= names
        server = redis.process
    assert server.poll() is not None, "redis-server outlived the network"
    names = set(netns.namespaces())
    assert not any(name.startswith(net.prefix) for name in names), names
