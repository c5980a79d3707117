"""The Django session engine (``SESSION_ENGINE = "clustersession.django"``), in process.

Modelled on what Django's own backend tests check, through Django's test ``Client``
and the ``SessionBase`` methods directly; the manager's clock is a test's own where
time matters (no sleeps).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

import django
import httpx
import pytest
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core.management import call_command
from django.test import Client

import clustersession.django as engine_module
import clustersession.web.django as django_engine
from clustersession import ClusterConfig
from clustersession.django import SessionStore
from clustersession.wsgi import ENVIRON_KEY, ClusterSessionWSGIMiddleware

SECRET = "django-cluster-secret-0123"
CLUSTER = {"jvm_route": "dj", "secret": SECRET, "manager": {"max_inactive_interval": 600}}
IDLE = 600

if not settings.configured:
    settings.configure(
        SECRET_KEY="django-site-secret-key-not-used-for-ids",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF="tests.web.django_urls",
        SESSION_ENGINE="clustersession.django",
        CLUSTERSESSION=CLUSTER,
        CLUSTERSESSION_LISTENERS=["tests.web.django_urls.RECORDER"],
        USE_TZ=True,
    )
    django.setup()

from tests.web.django_urls import RECORDER  # noqa: E402  (needs the settings above)
from tests.web.joined_node import JoinedNode  # noqa: E402

COOKIE = settings.SESSION_COOKIE_NAME


@pytest.fixture(scope="module", autouse=True)
def _stop_the_member() -> Iterator[None]:
    yield
    engine_module.stop()
    assert engine_module.engine().manager.running is False


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.fixture
def clock() -> Iterator[list[float]]:
    """The manager's wall clock, as a list holding the time: set ``clock[0]`` to move it."""
    manager = engine_module.engine().manager.start()
    original = manager.clock
    now = [original()]
    manager.clock = lambda: now[0]
    yield now
    manager.clock = original


def cookie_of(response: Any) -> str | None:
    morsel = response.cookies.get(COOKIE)
    return None if morsel is None else str(morsel.value)


def is_live(key: str) -> bool:
    return SessionStore().exists(key)


# -- through the middleware ------------------------------------------------------------


def test_a_write_is_read_back_and_the_cookie_holds_only_the_id(client: Client) -> None:
    first = client.get("/set", {"colour": "blue"})
    key = cookie_of(first)
    assert key is not None and first.json()["key"] is None  # a new session's key: at save
    assert "blue" not in first.cookies.output() and key.endswith(".dj")
    assert first.cookies[COOKIE]["httponly"] and "Cookie" in first["Vary"]
    again = client.get("/get")
    assert again.json() == {"key": key, "data": {"colour": "blue"}}
    assert COOKIE not in again.cookies


def test_no_write_no_session_and_no_cookie(client: Client) -> None:
    response = client.get("/get")
    assert response.json() == {"key": None, "data": {}}
    assert COOKIE not in response.cookies


def test_nested_changes_are_saved_without_marking_modified(client: Client) -> None:
    client.get("/set", {"x": "1"})
    store = SessionStore(client.cookies[COOKIE].value)
    store["items"] = []
    store.save()
    client.get("/push", {"v": "a"})
    client.get("/push", {"v": "b"})
    assert client.get("/get").json()["data"]["items"] == ["a", "b"]


def test_an_unserialisable_value_names_key_and_type(client: Client) -> None:
    response = client.get("/bad")
    assert response.status_code == 400
    text = response.content.decode()
    assert "'bad'" in text and "object" in text and "JSON" not in text
    assert COOKIE not in response.cookies


@pytest.mark.parametrize(
    "key",
    ["garbage", "a" * 5000, "x.y.z", "AAAAAAAAAAAAAAAAAAAAAA.dj", "", "A" * 44 + ".dj"],
)
def test_a_bogus_key_gives_an_empty_session_and_a_normal_response(client: Client, key: str) -> None:
    client.cookies[COOKIE] = key
    response = client.get("/get")
    assert response.status_code == 200 and response.json() == {"key": None, "data": {}}
    written = client.get("/set", {"k": "v"})
    assert cookie_of(written) not in (None, key)  # a fresh id, never the client's


def test_a_session_signed_with_another_secret_is_refused(client: Client) -> None:
    other = ClusterSessionWSGIMiddleware(
        _wsgi_writer, session_cookie=COOKIE, secret_key="another-secret-0123456789"
    )
    with httpx.Client(transport=httpx.WSGITransport(app=other), base_url="http://t") as c:
        forged = c.get("/").cookies[COOKIE]
    other.manager.stop()
    client.cookies[COOKIE] = forged
    assert client.get("/get").json() == {"key": None, "data": {}}


def test_cycle_key_keeps_the_data_and_retires_the_old_key(client: Client) -> None:
    old = cookie_of(client.get("/set", {"user": "ann"}))
    assert old is not None
    cycled = client.get("/cycle")
    new = cookie_of(cycled)
    assert new is not None and new != old
    assert cycled.json()["data"] == {"user": "ann"}
    assert client.get("/get").json() == {"key": new, "data": {"user": "ann"}}
    assert not is_live(old) and is_live(new)
    assert ("renamed", new) in RECORDER.events
    # The retired key: an empty session, and writes under it start nothing.
    replay = Client()
    replay.cookies[COOKIE] = old
    written = replay.get("/set", {"user": "eve"})
    assert written.status_code == 200 and COOKIE not in written.cookies
    assert client.get("/get").json()["data"] == {"user": "ann"}
    # Read again, the stale key is deleted from the client, as Django does for any.
    read = replay.get("/get")
    assert read.json() == {"key": None, "data": {}} and read.cookies[COOKIE]["max-age"] == 0


def test_flush_destroys_the_session_and_deletes_the_cookie(client: Client) -> None:
    old = cookie_of(client.get("/set", {"user": "ann"}))
    assert old is not None
    flushed = client.get("/flush")
    assert flushed.json() == {"key": None, "data": {}}
    assert flushed.cookies[COOKIE]["max-age"] == 0
    assert not is_live(old)
    assert ("destroyed", old) in RECORDER.events
    assert client.get("/get").json() == {"key": None, "data": {}}


def test_an_emptied_session_is_destroyed(client: Client) -> None:
    old = cookie_of(client.get("/set", {"a": "1"}))
    assert old is not None
    cleared = client.get("/clear")
    assert cleared.cookies[COOKIE]["max-age"] == 0
    assert not is_live(old)


def test_a_5xx_response_saves_nothing(client: Client) -> None:
    key = cookie_of(client.get("/set", {"kept": "yes"}))
    failed = client.get("/boom")
    assert failed.status_code == 500 and COOKIE not in failed.cookies
    assert client.get("/get").json() == {"key": key, "data": {"kept": "yes"}}


def test_a_read_only_request_keeps_the_session_alive(client: Client, clock: list[float]) -> None:
    start = clock[0]
    key = cookie_of(client.get("/set", {"a": "1"}))
    assert key is not None
    clock[0] = start + IDLE - 100
    read = client.get("/get")
    assert read.json()["data"] == {"a": "1"} and COOKIE not in read.cookies
    clock[0] = start + IDLE + 100  # idle since the write, not since the read
    assert client.get("/get").json() == {"key": key, "data": {"a": "1"}}
    clock[0] = start + 3 * IDLE  # now idle for longer than the timeout
    assert client.get("/get").json() == {"key": None, "data": {}}


def test_set_expiry_seconds_is_the_idle_timeout_and_the_cookie_age(client: Client) -> None:
    client.get("/set", {"a": "1"})
    response = client.get("/expiry", {"s": "120"})
    assert response.json()["age"] == 120 and response.json()["idle"] == 120
    assert response.cookies[COOKIE]["max-age"] == 120
    assert SessionStore(response.json()["key"]).max_inactive_interval == 120
    at_close = client.get("/expiry", {"s": "0"})
    assert at_close.json()["browser_close"] is True and at_close.json()["idle"] == IDLE
    assert at_close.cookies[COOKIE]["max-age"] == ""  # a browser-session cookie
    default = client.get("/expiry", {"s": "none"})
    assert default.json()["age"] == settings.SESSION_COOKIE_AGE
    assert default.json()["idle"] == IDLE and default.json()["browser_close"] is False


def test_set_expiry_to_a_date_is_a_hard_limit(clock: list[float]) -> None:
    store = SessionStore()
    store["a"] = 1
    store.set_expiry(timedelta(seconds=300))
    assert 295 <= store.max_inactive_interval <= 300
    assert 295 <= store.get_expiry_age() <= 300
    store.save()
    key = store.session_key
    assert SessionStore(key)["a"] == 1
    # Passed: refused at load, even though the manager still holds it.
    again = SessionStore(key)
    again.set_expiry(timedelta(seconds=-1))
    again.save()
    gone = SessionStore(key)
    assert gone.load() == {} and gone.session_key is None and not is_live(key)


def test_the_listeners_hear_creation(client: Client) -> None:
    key = cookie_of(client.get("/set", {"a": "1"}))
    engine_module.engine().manager.flush()  # async mode: the commit is queued, not waited for
    assert ("created", key) in RECORDER.events


# -- the SessionBase contract, directly -----------------------------------------------


def saved(**values: Any) -> SessionStore:
    store = SessionStore()
    store.update(values)
    store.save()
    return store


def test_save_load_exists() -> None:
    store = saved(a=1, b=[1, 2])
    key = store.session_key
    assert key is not None and store.exists(key)
    loaded = SessionStore(key)
    assert loaded.load() == {"a": 1, "b": [1, 2]}
    assert loaded["b"] == [1, 2] and "a" in loaded and loaded.get("c", 3) == 3


def test_a_new_store_is_empty_and_keyless() -> None:
    store = SessionStore()
    assert store.is_empty() and store.session_key is None and not store.modified
    assert store.get("a") is None and not store.exists(None)


def test_session_key_validation() -> None:
    assert SessionStore("short").session_key is None
    assert SessionStore("x" * 100).session_key is None
    assert SessionStore(None).session_key is None
    live = saved(a=1).session_key
    assert SessionStore(live).session_key == live


def test_an_unknown_key_loads_empty_and_is_dropped() -> None:
    key = saved(a=1).session_key
    assert key is not None
    SessionStore().delete(key)
    store = SessionStore(key)
    assert store.load() == {} and store.session_key is None
    store["b"] = 2
    store.save()
    assert store.session_key not in (None, key)


def test_create_reserves_a_key_stored_with_the_first_value() -> None:
    store = SessionStore()
    store.create()
    key = store.session_key
    assert key is not None and store.modified and not store.exists(key)
    store["a"] = 1
    store.save()
    assert store.session_key == key and store.exists(key)


def test_save_must_create_refuses_a_live_key() -> None:
    key = saved(a=1).session_key
    clash = SessionStore(key)
    clash["b"] = 2
    with pytest.raises(CreateError):
        clash.save(must_create=True)
    fresh = SessionStore()
    fresh["c"] = 3
    fresh.save(must_create=True)
    assert fresh.exists(fresh.session_key)


def test_save_after_a_concurrent_delete_raises_update_error() -> None:
    key = saved(a=1).session_key
    store = SessionStore(key)
    store["a"] = 2
    SessionStore().delete(key)
    with pytest.raises(UpdateError):
        store.save()


def test_delete_with_and_without_a_key() -> None:
    one, two = saved(a=1), saved(b=2)
    one.delete()
    assert not one.exists(one.session_key)
    one.delete(two.session_key)
    assert not one.exists(two.session_key)
    one.delete("not-a-key")  # nothing to do, no error


def test_cycle_key_directly() -> None:
    store = saved(a=1)
    old = store.session_key
    store.cycle_key()
    new = store.session_key
    assert new != old and store["a"] == 1
    store.save()
    assert not store.exists(old) and store.exists(new)
    assert SessionStore(new)["a"] == 1


def test_flush_directly() -> None:
    store = saved(a=1)
    old = store.session_key
    store.flush()
    assert store.session_key is None and store.is_empty() and not store.exists(old)


def test_pop_setdefault_update_keys_items() -> None:
    store = saved(a=1, b=2)
    again = SessionStore(store.session_key)
    assert again.pop("a") == 1 and again.pop("zz", None) is None and again.modified
    assert again.setdefault("c", 3) == 3
    again.update({"d": 4})
    assert sorted(again.keys()) == ["b", "c", "d"]
    assert dict(again.items()) == {"b": 2, "c": 3, "d": 4}
    again.save()
    assert SessionStore(store.session_key).load() == {"b": 2, "c": 3, "d": 4}


def test_modified_reflects_real_changes_only() -> None:
    key = saved(cart=["a"], n=1).session_key
    store = SessionStore(key)
    assert store["n"] == 1 and store["cart"] == ["a"]
    assert store.accessed and not store.modified
    store["cart"].append("b")
    assert store.modified


def test_test_cookie() -> None:
    store = SessionStore()
    store.set_test_cookie()
    assert store.test_cookie_worked()
    store.delete_test_cookie()
    assert not store.test_cookie_worked()


def test_unserialisable_assignment_raises_type_error_naming_key_and_type() -> None:
    store = SessionStore()
    with pytest.raises(TypeError, match=r"'when'.*_thread\.lock"):
        store["when"] = threading.Lock()
    assert "when" not in store and not store.modified


@pytest.mark.anyio
async def test_the_async_methods() -> None:
    store = SessionStore()
    await store.aset("a", 1)
    await store.asave()
    key = store.session_key
    again = SessionStore(key)
    assert await again.aget("a") == 1 and await again.aexists(key)
    await again.acycle_key()
    await again.asave()
    assert not await again.aexists(key)
    await again.aflush()
    assert again.session_key is None


def test_clear_expired_and_clearsessions(clock: list[float]) -> None:
    key = saved(a=1).session_key
    assert key is not None
    token = engine_module.engine().front.ids.parse(key)
    assert token is not None
    manager = engine_module.engine().manager
    clock[0] += IDLE + 1
    before = manager.view().sessions
    SessionStore.clear_expired()
    assert manager.view().sessions < before
    call_command("clearsessions")  # the management command works too
    assert manager.open(token[0]).record is None


def test_nothing_starts_before_the_first_use() -> None:
    engine_module.stop()
    store = SessionStore("AAAA")  # validating a key builds the engine, nothing more
    assert store.session_key is None
    assert engine_module.engine().manager.running is False
    SessionStore.clear_expired()  # no member here: nothing to sweep, nothing started
    assert engine_module.engine().manager.running is False


# -- a mixed cluster: the WSGI middleware and the Django engine ------------------------


def _wsgi_writer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    session = environ[ENVIRON_KEY]
    session["from"] = "wsgi"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [session.get("django", "").encode()]


def test_a_cookie_written_by_the_wsgi_middleware_is_read_by_the_engine(client: Client) -> None:
    wsgi = ClusterSessionWSGIMiddleware(
        _wsgi_writer,
        session_cookie=COOKIE,
        config=ClusterConfig.from_mapping(CLUSTER),
    )
    # One member serving both apps: where a replicated cluster would share the data.
    wsgi.manager = engine_module.engine().manager
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://t") as c:
        key = c.get("/").cookies[COOKIE]
        client.cookies[COOKIE] = key
        read = client.get("/get")
        assert read.json() == {"key": key, "data": {"from": "wsgi"}}
        client.get("/set", {"django": "hello"})
        assert c.get("/").text == "hello"  # and back the other way


def test_concurrent_requests_each_commit(client: Client) -> None:
    key = cookie_of(client.get("/set", {"n": "0"}))
    assert key is not None
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            own = Client()
            own.cookies[COOKIE] = key
            own.get("/set", {name: "1"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"k{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    data = client.get("/get").json()["data"]
    assert all(data[f"k{i}"] == "1" for i in range(8))


# -- the backup manager: a session held elsewhere --------------------------------------


def test_the_engine_fetches_from_the_cookies_route(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A node that just joined has no proxy entry for the session: the cookie's route
    # locates it, as on the ASGI side; the engine then re-routes the cookie to it.
    joined = JoinedNode(CLUSTER["jvm_route"])
    engine_module.stop()
    monkeypatch.setattr(django_engine, "manager_for", joined.manager_for)
    thread = engine_module.engine().manager
    thread.start()
    try:
        key = joined.unknown_session(thread, SECRET, user="carol")
        client.cookies[COOKIE] = key
        read = client.get("/get")
        token = key.partition(".")[0]
        assert read.json()["data"] == {"user": "carol"}
        assert joined.holds_as_primary(thread, token)
        assert cookie_of(read) == f"{token}.{CLUSTER['jvm_route']}"
    finally:
        joined.stop(thread)
        engine_module.stop()
