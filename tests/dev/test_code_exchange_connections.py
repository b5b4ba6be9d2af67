"""The OAuth code exchange keeps its connections to WeChat alive: counted on the server's side of
real loopback TCP (a relay in front of the simulator's fake WeChat), across threads, after the
server drops an idle connection, and in a forked child. One exchange per code all the while."""

from __future__ import annotations

import os
import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app.public import wechat_oauth
from app.public.wechat_oauth import exchange_oauth_code, oauth_authorize_url
from app.wechat_api import WeChatApiError
from tests.public.test_oauth import phone
from tests.relay import Relay

FAST_LAYER_BOTH_WAYS = True  # tests/conftest.py: with the WSGI fast paths and without
EXCHANGE_CODE = re.compile(rb"GET /dev/wechat/sns/oauth2/access_token\?[^ ]*?code=([A-Za-z0-9_-]+)")


class CountingRelay(Relay):
    """The relay standing where WeChat's API is: the connections it accepts are what WeChat would
    see; `codes` are the codes of the exchanges they carried."""

    @property
    def codes(self) -> list[str]:
        """The code of every exchange request, in the order of connections then requests."""
        with self.lock:
            return [c.decode() for sent in self.sent for c in EXCHANGE_CODE.findall(bytes(sent))]


@pytest.fixture
def wechat(app, sim):
    """The simulator's fake WeChat in its own gunicorn process (keep-alive, as WeChat's servers),
    its API behind a counting relay."""
    settings = app.config["SETTINGS"]
    where = urlsplit(sim)
    relay = CountingRelay((where.hostname, where.port))
    settings.wechat.api_base_url = f"http://127.0.0.1:{relay.port}{where.path}"
    yield relay
    relay.close()


def new_codes(app, live_server, count: int, prefix: str) -> list[str]:
    """Codes the fake WeChat issued, one per citizen (openid prefix + number)."""
    settings = app.config["SETTINGS"]
    authorize = oauth_authorize_url(settings, live_server.url + "/oauth/callback", "s").partition("#")[0]
    codes = []
    with requests.Session() as http:
        for n in range(count):
            moved = http.get(f"{authorize}&openid={prefix}{n:06d}", allow_redirects=False)
            codes.append(parse_qs(urlsplit(moved.headers["Location"]).query)["code"][0])
    return codes


def test_exchanges_from_many_threads_share_one_kept_alive_connection(app, live_server, wechat):
    settings = app.config["SETTINGS"]
    codes = new_codes(app, live_server, 10, "oSEQ")
    openids: list[str] = []

    def exchange_two(first: int) -> None:  # each thread lives for two exchanges only
        openids.extend(exchange_oauth_code(settings, code).openid for code in codes[first : first + 2])

    for first in range(0, 10, 2):
        thread = threading.Thread(target=exchange_two, args=(first,))
        thread.start()
        thread.join()
    assert openids == [f"oSEQ{n:06d}" for n in range(10)]
    assert wechat.codes == codes  # each code exchanged once, in order
    assert wechat.accepted == 1  # ten requests from five threads, one TCP connection


def test_concurrent_exchanges_open_at_most_one_connection_each_and_keep_them(app, live_server, wechat):
    settings = app.config["SETTINGS"]
    width = 6
    codes = new_codes(app, live_server, 2 * width, "oPAR")
    results: dict[str, str] = {}

    def run_round(round_codes: list[str]) -> None:
        start = threading.Barrier(len(round_codes))

        def exchange(code: str) -> None:
            start.wait()
            results[code] = exchange_oauth_code(settings, code).openid

        threads = [threading.Thread(target=exchange, args=(code,)) for code in round_codes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    run_round(codes[:width])
    after_first = wechat.accepted
    assert 1 <= after_first <= width
    run_round(codes[width:])  # new threads: the kept connections serve them
    assert wechat.accepted <= width
    assert sorted(results.values()) == [f"oPAR{n:06d}" for n in range(2 * width)]
    assert sorted(wechat.codes) == sorted(codes)  # once each


def test_a_connection_the_server_dropped_is_replaced_not_an_error(app, live_server, wechat):
    settings = app.config["SETTINGS"]
    first, second = new_codes(app, live_server, 2, "oDROP")
    assert exchange_oauth_code(settings, first).openid == "oDROP000000"
    wechat.drop_all()  # WeChat ends the idle keep-alive
    assert exchange_oauth_code(settings, second).openid == "oDROP000001"
    assert wechat.accepted == 2 and wechat.codes == [first, second]


def test_a_connection_cut_as_the_exchange_went_out_is_tried_once_more(app, live_server, wechat):
    """WeChat ends a kept-alive connection just as an exchange goes out on it: the exchange goes
    once more on a new connection (the code never reached WeChat). Cut twice: the busy 503."""
    settings = app.config["SETTINGS"]
    first, second, third = new_codes(app, live_server, 3, "oCUT")
    assert exchange_oauth_code(settings, first).openid == "oCUT000000"
    wechat.cut(b"/sns/oauth2/access_token?", times=1)
    assert exchange_oauth_code(settings, second).openid == "oCUT000001"
    assert wechat.cut_requests == 1 and wechat.accepted == 2
    assert wechat.codes == [first, second, second]  # the second sent twice, WeChat saw it once
    wechat.cut(b"/sns/oauth2/access_token?", times=2)
    with pytest.raises(WeChatApiError):
        exchange_oauth_code(settings, third)
    assert wechat.cut_requests == 3 and wechat.codes == [first, second, second, third, third]


def test_the_journey_through_the_callback_reuses_the_connection(app, live_server, wechat):
    """Citizens through the app's own callback (either layer): one connection for all."""
    for _ in range(4):
        http = phone()
        authorize = http.get(live_server.url + "/t/whoami", allow_redirects=False).headers["Location"]
        assert http.get(authorize).json()["openid"].startswith("oSIM")
    assert len(wechat.codes) == 4 and len(set(wechat.codes)) == 4
    assert wechat.accepted == 1


def test_a_forked_child_never_uses_its_parents_connections(app, live_server, wechat):
    settings = app.config["SETTINGS"]
    (code,) = new_codes(app, live_server, 1, "oFORK")
    parent_pool = wechat_oauth._exchange_pool(settings)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a pool of its own, reports and leaves at once
        try:
            fresh = wechat_oauth._exchange_pool(settings) is not parent_pool
            os.write(write, b"fresh" if fresh else b"shared")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 16) == b"fresh"
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    assert wechat_oauth._exchange_pool(settings) is parent_pool  # the parent keeps its own
    assert exchange_oauth_code(settings, code).openid == "oFORK000000"
