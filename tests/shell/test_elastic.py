"""The client built from settings, and the one-line descriptions of what went wrong.

Errors are produced for real: a closed port, an unresolvable name, and Elasticsearch-shaped
401/403/400/404 answers fabricated by the fault-injecting proxy in front of noida-db.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Callable

import msgspec
import pytest
from elastic_transport import (
    ApiResponseMeta,
    ConnectionError,
    ConnectionTimeout,
    HttpHeaders,
    NodeConfig,
    TlsError,
)
from elasticsearch import ApiError, Elasticsearch
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.config import CloudSettings, ElasticsearchSettings, Secret
from elastic_connector.shell import elastic
from elastic_connector.shell.elastic import (
    ErrorClass,
    PermanentElasticsearchError,
    build_client,
    classify_error,
    classify_status,
    cluster_version,
    describe_error,
    describe_response,
    redact_url,
)
from tests.support.faulty_proxy import (
    Disconnect,
    FaultyProxy,
    Reply,
    Stall,
    es_error_body,
    forbidden_reply,
    unauthorized_reply,
)

PASSWORD = "pw-Sup3r-s3cret"
API_KEY = base64.b64encode(b"VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").decode()


def _client(settings: ElasticsearchSettings) -> Elasticsearch:
    return build_client(settings, CloudSettings())


def _capture(call: Callable[[], object]) -> Exception:
    with pytest.raises(Exception) as info:  # noqa: PT011  (any client error is the subject)
        call()
    assert isinstance(info.value, Exception)
    return info.value


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- build_client ------------------------------------------------------------------------------


def test_a_framed_bulk_body_is_sent_as_it_is_and_anything_else_as_ndjson() -> None:
    serializers = _client(ElasticsearchSettings(hosts=("http://127.0.0.1:9",))).transport
    framed = b'{"index":{"_id":"a"}}\n{"v":1}\n'
    assert serializers.serializers.dumps(framed, mimetype="application/x-ndjson") is framed
    # Not framed (no final newline) or not bytes: the transport's own NDJSON rules apply.
    assert serializers.serializers.dumps(b'{"a":1}', mimetype="application/x-ndjson") == (
        b'{"a":1}\n'
    )
    lines = [{"index": {}}, {"v": 1}]
    assert serializers.serializers.dumps(lines, mimetype="application/x-ndjson") == (
        b'{"index":{}}\n{"v":1}\n'
    )


def test_client_reaches_the_test_cluster(es_client: Elasticsearch) -> None:
    assert es_client.info().body["version"]["number"].split(".")[0] in {"8", "9"}


def test_cluster_version_accepts_8x_and_refuses_7x(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    client = _client(proxied_settings)
    assert cluster_version(client).startswith(("8.", "9."))

    old = {"name": "n", "cluster_name": "c", "version": {"number": "7.17.9"}, "tagline": "t"}
    faulty_proxy.inject(Reply(200, old), path="/", method="GET")
    with pytest.raises(PermanentElasticsearchError, match=r"7\.17\.9 is too old"):
        cluster_version(_client(proxied_settings))


def test_api_key_is_sent_in_its_encoded_form(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    settings = msgspec.structs.replace(
        proxied_settings, api_key=Secret(API_KEY), username="ignored", password=Secret("x")
    )
    _client(settings).info()
    assert faulty_proxy.requests[-1].headers["authorization"] == f"ApiKey {API_KEY}"


def test_basic_auth_and_cloud_auth(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    settings = msgspec.structs.replace(
        proxied_settings, api_key=None, username="connector", password=Secret(PASSWORD)
    )
    _client(settings).info()
    expected = base64.b64encode(f"connector:{PASSWORD}".encode()).decode()
    assert faulty_proxy.requests[-1].headers["authorization"] == f"Basic {expected}"

    cloud = CloudSettings(auth=Secret("cloud-user:with:colons"))
    build_client(msgspec.structs.replace(settings, username=None), cloud).info()
    expected = base64.b64encode(b"cloud-user:with:colons").decode()
    assert faulty_proxy.requests[-1].headers["authorization"] == f"Basic {expected}"


def test_no_credentials_means_no_authorization_header(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    settings = msgspec.structs.replace(proxied_settings, api_key=None, username=None)
    _client(settings).info()
    assert "authorization" not in faulty_proxy.requests[-1].headers


def test_plain_http_with_credentials_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    settings = ElasticsearchSettings(
        hosts=(f"http://user:{PASSWORD}@127.0.0.1:9",), api_key=Secret(API_KEY)
    )
    with caplog.at_level(logging.WARNING, logger="elastic_connector.shell.elastic"):
        build_client(settings, CloudSettings())
    assert "without TLS" in caplog.text
    assert PASSWORD not in caplog.text


def test_request_timeout_comes_from_settings(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    faulty_proxy.inject(Stall(30.0), times=None)
    settings = msgspec.structs.replace(proxied_settings, request_timeout=0.2)
    exc = _capture(_client(settings).options(max_retries=0).info)
    assert isinstance(exc, ConnectionTimeout)
    assert "did not answer within the request timeout" in describe_error(exc)
    assert classify_error(exc) is ErrorClass.TRANSIENT


# --- describe_error: connection problems --------------------------------------------------------


def test_refused_connection_names_host_and_port() -> None:
    port = _closed_port()
    client = _client(ElasticsearchSettings(hosts=(f"http://127.0.0.1:{port}",)))
    exc = _capture(client.info)
    message = describe_error(exc)
    assert f"127.0.0.1:{port}" in message
    assert "connection refused" in message
    assert "\n" not in message
    assert classify_error(exc) is ErrorClass.TRANSIENT


def test_unresolvable_host_says_dns() -> None:
    client = _client(
        ElasticsearchSettings(hosts=("http://no-such-host.invalid:9200",), request_timeout=5)
    )
    exc = _capture(client.info)
    assert isinstance(exc, ConnectionError)
    message = describe_error(exc)
    assert "no-such-host.invalid" in message
    assert "DNS" in message


def test_dropped_connection_is_transient(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    faulty_proxy.inject(Disconnect(), times=None)
    exc = _capture(_client(proxied_settings).info)
    assert classify_error(exc) is ErrorClass.TRANSIENT
    assert "closed the connection" in describe_error(exc)


# --- describe_error: answers ---------------------------------------------------------------------


def test_401_says_credentials_without_revealing_them(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    settings = msgspec.structs.replace(
        proxied_settings, api_key=None, username="connector", password=Secret(PASSWORD)
    )
    faulty_proxy.inject(unauthorized_reply("connector"))
    exc = _capture(_client(settings).info)
    message = describe_error(exc)
    assert "rejected the credentials" in message
    assert "HTTP 401" in message
    assert "api_key" in message
    assert PASSWORD not in message
    assert classify_error(exc) is ErrorClass.PERMANENT


def test_403_names_the_privilege_and_the_index(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    faulty_proxy.inject(forbidden_reply(index="logs-ti_x.indicator"))
    client = _client(proxied_settings)
    exc = _capture(lambda: client.index(index="logs-ti_x.indicator", id="1", document={}))
    message = describe_error(exc)
    assert "HTTP 403" in message
    assert "indices:data/write/bulk[s]" in message
    assert "on logs-ti_x.indicator" in message
    assert "create_doc" in message
    assert "API key VuaCfGcBCdbkQm-e5aOx of user connector" in message
    assert classify_error(exc) is ErrorClass.PERMANENT


def test_403_cluster_privilege_for_a_user() -> None:
    reason = (
        "action [cluster:admin/indices/template/put] is unauthorized for user [connector] with "
        "effective roles [ti_writer], this action is granted by the cluster privileges "
        "[manage_index_templates,manage,all]"
    )
    message = describe_response(
        403, es_error_body(403, "security_exception", reason), "https://es:9200"
    )
    assert "user connector" in message
    assert "one of the cluster privileges manage_index_templates, manage, all" in message


def test_403_write_block_is_not_called_a_privilege() -> None:
    reason = "index [ti-000001] blocked by: [FORBIDDEN/8/index write (api)];"
    message = describe_response(
        403, es_error_body(403, "cluster_block_exception", reason), "https://es:9200"
    )
    assert "blocks writes" in message
    assert "privilege" not in message


def test_404_names_the_missing_index(es_client: Elasticsearch, es_prefix: str) -> None:
    exc = _capture(lambda: es_client.get(index=f"{es_prefix}-missing", id="1"))
    message = describe_error(exc)
    assert f"index {es_prefix}-missing does not exist" in message
    assert classify_error(exc) is ErrorClass.PERMANENT


def test_not_elasticsearch_is_recognised(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    body = {"version": {"number": "2.11.0", "distribution": "opensearch"}}
    faulty_proxy.inject(Reply(200, body, {"content-type": "application/json"}))
    exc = _capture(_client(proxied_settings).info)
    message = describe_error(exc)
    assert "is not Elasticsearch" in message
    assert classify_error(exc) is ErrorClass.PERMANENT


def test_compatibility_header_refusal_means_wrong_version(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    reason = "Invalid media-type value on headers [Content-Type, Accept]"
    faulty_proxy.inject(Reply(400, es_error_body(400, "media_type_header_exception", reason)))
    exc = _capture(_client(proxied_settings).info)
    assert "needs Elasticsearch 8.x or 9.x" in describe_error(exc)


def test_overload_and_server_errors_are_transient(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    client = _client(proxied_settings).options(max_retries=0)
    faulty_proxy.inject(Reply(429, es_error_body(429, "es_rejected_execution_exception", "full")))
    exc = _capture(client.info)
    assert classify_error(exc) is ErrorClass.TRANSIENT
    assert "overloaded" in describe_error(exc)
    html = b"<html>Service Unavailable</html>"
    faulty_proxy.inject(Reply(503, html, {"content-type": "text/html"}))
    exc = _capture(client.info)
    assert classify_error(exc) is ErrorClass.TRANSIENT
    assert "HTTP 503" in describe_error(exc)
    # A load balancer's page without a content type cannot even be decoded: still transient.
    faulty_proxy.inject(Reply(502, html, {}))
    exc = _capture(client.info)
    assert classify_error(exc) is ErrorClass.TRANSIENT
    assert "not valid JSON" in describe_error(exc)


def test_transport_retries_hide_a_single_503(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    faulty_proxy.inject(Reply(503, es_error_body(503, "unavailable_shards_exception", "x")))
    assert _client(proxied_settings).info().meta.status == 200
    assert faulty_proxy.pending() == 0


# --- pure properties ---------------------------------------------------------------------------


@given(st.integers(min_value=100, max_value=599))
def test_transient_statuses_are_exactly_timeout_overload_and_server_errors(status: int) -> None:
    expected = status in (408, 429) or status >= 500
    assert (classify_status(status) is ErrorClass.TRANSIENT) == expected


def _api_error(status: int, body: object) -> ApiError:
    node = NodeConfig(scheme="https", host="es.example.org", port=9243)
    meta = ApiResponseMeta(
        status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=node
    )
    return ApiError(message="x", meta=meta, body=body)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_error_bodies = _json | st.builds(
    lambda t, r: {"error": {"type": t, "reason": r}}, st.text(), st.text()
)


@given(st.integers(min_value=100, max_value=599), _error_bodies)
def test_any_answer_gives_one_line_and_the_matching_class(status: int, body: object) -> None:
    exc = _api_error(status, body)
    message = describe_error(exc)
    assert message
    assert "\n" not in message
    assert "es.example.org:9243" in message
    assert classify_error(exc) is classify_status(status)


@given(
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9!$&'()*+,;=~-]{4,20}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    st.integers(min_value=1, max_value=65535),
)
def test_redact_url_drops_user_info(
    scheme: str, user: str, password: str, host: str, port: int
) -> None:
    redacted = redact_url(f"{scheme}://{user}:{password}@{host}:{port}/path")
    assert redacted == f"{scheme}://{host}:{port}/path"
    assert redact_url(redacted) == redacted


def test_tls_errors_are_permanent() -> None:
    assert classify_error(TlsError("certificate verify failed")) is ErrorClass.PERMANENT
    assert classify_error(ConnectionError("reset")) is ErrorClass.TRANSIENT


def test_insecure_mode_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(elastic, "_insecure_warning_given", False)
    settings = ElasticsearchSettings(hosts=("https://127.0.0.1:9",), ssl_verify=False)
    with caplog.at_level(logging.WARNING, logger="elastic_connector.shell.elastic"):
        build_client(settings, CloudSettings())
        build_client(settings, CloudSettings())
    warnings = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1


def test_describe_error_of_other_exceptions_is_one_line() -> None:
    message = describe_error(ValueError("first line\nsecond line"))
    assert message == "ValueError: first line"
    payload = json.dumps({"k": "v"})
    assert describe_error(RuntimeError(payload)) == f"RuntimeError: {payload}"
