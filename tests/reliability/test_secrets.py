"""Secrets never leave the process: not in the logs (text or JSON), not in error messages, not
in ``check``'s report, not on ``/metrics`` or ``/healthz`` — above all when things go wrong.

Secrets: the OpenCTI token (a right one and a wrong one), the Elasticsearch API key in both
forms (``id:key`` and its base64 encoding) and its two decoded parts, the Elasticsearch password
and ``cloud.auth``. The failures provoked: a token OpenCTI does not know, Elasticsearch
answering 401 and 403 (naming the API key id, as it does), the stream refused with 401, an
untrusted TLS certificate, an unresolvable Elastic Cloud deployment. Everything the daemon
writes and serves is collected during and after each failure and searched.

Also here: ``check`` warns when the OpenCTI token belongs to an administrator (``BYPASS``), and
not for a dedicated connector user.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import ssl
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import msgspec
import pytest
import trustme

from elastic_connector.core.config import ElasticsearchSettings, Secret
from elastic_connector.demo.opencti_data import make_indicator
from tests.e2e.harness import ConnectorHarness, ConnectorProcess, wait_for
from tests.support.faulty_proxy import FaultyProxy, forbidden_reply, unauthorized_reply

Harnesses = Callable[..., ConnectorHarness]

TOKEN = "sec-opencti-token-4c1f9e2b7a61"
WRONG_TOKEN = "sec-wrong-token-0b5d8e3c9f27"
API_KEY_ID = "kV9xQm2bTzeY4pLw8rNc"
API_KEY_SECRET = "Hq3fJ7uZ0sVb5nXe2wKd9A"
API_KEY_PAIR = f"{API_KEY_ID}:{API_KEY_SECRET}"
API_KEY_ENCODED = base64.b64encode(API_KEY_PAIR.encode()).decode()
PASSWORD = "sec-es-password-8d2e6f0a13"
CLOUD_PASSWORD = "sec-cloud-password-6a7b8c9d0e"
CLOUD_AUTH = f"elastic:{CLOUD_PASSWORD}"
CLOUD_ID = "sec:" + base64.b64encode(b"localhost.invalid:9243$0123abcd$4567ef").decode()
SECRETS = (
    TOKEN,
    WRONG_TOKEN,
    API_KEY_ID,
    API_KEY_SECRET,
    API_KEY_PAIR,
    API_KEY_ENCODED,
    PASSWORD,
    CLOUD_AUTH,
    CLOUD_PASSWORD,
)


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} appears in {where}:\n{text[-3000:]}"


class Exposure:
    """Everything a deployment shows: the logs, and each ``/metrics`` and ``/healthz`` read."""

    def __init__(self) -> None:
        self.served: list[str] = []

    def scrape(self, daemon: ConnectorProcess) -> None:
        if daemon.metrics_port is None:
            return
        for path in ("/metrics", "/healthz"):
            url = f"http://127.0.0.1:{daemon.metrics_port}{path}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    self.served.append(response.read().decode())
            except urllib.error.HTTPError as error:  # 503 while unhealthy: still a page
                self.served.append(error.read().decode())
            except OSError:
                continue

    def check(self, *processes: ConnectorProcess) -> None:
        for number, page in enumerate(self.served):
            assert_no_secret(f"served page {number}", page)
        for process in processes:
            assert_no_secret(f"the output of {' '.join(process.args)}", process.output())


@pytest.fixture
def exposure() -> Exposure:
    return Exposure()


def health_error(daemon: ConnectorProcess, section: str) -> str | None:
    health = daemon.health()
    body = health[1].get(section) if health is not None else None
    error = body.get("last_error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def reports(daemon: ConnectorProcess, section: str, words: str) -> bool:
    """Whether ``/healthz`` shows an error containing ``words`` for ``section``."""
    return words in (health_error(daemon, section) or "")


def upstream_of(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))


def test_refusals_by_elasticsearch_and_opencti_reveal_no_secret(
    e2e_harness: Harnesses,
    faulty_proxy: FaultyProxy,
    es_settings: ElasticsearchSettings,
    exposure: Exposure,
) -> None:
    connector = e2e_harness(env={"OPENCTI_TOKEN": TOKEN})
    connector.standin.add_user(TOKEN, name="connector", capabilities=["BYPASS"])
    connector.es_settings = msgspec.structs.replace(
        es_settings, hosts=(faulty_proxy.url,), api_key=Secret(API_KEY_ENCODED)
    )
    daemon = connector.start()
    connector.publish_and_ack("create", make_indicator("[ipv4-addr:value = '198.51.100.1']"))
    exposure.scrape(daemon)

    for refusal in (unauthorized_reply(), forbidden_reply(api_key_id=API_KEY_ID)):
        faulty_proxy.clear()
        faulty_proxy.inject(refusal, times=None, path="/_bulk")
        connector.publish(
            "create", make_indicator(f"[ipv4-addr:value = '198.51.100.{refusal.status}']")
        )
        wanted = "credentials" if refusal.status == 401 else "denied"
        wait_for(
            functools.partial(reports, daemon, "elasticsearch", wanted),
            timeout=20,
            what=f"/healthz to report the HTTP {refusal.status}",
            context=daemon.tail,
        )
        exposure.scrape(daemon)
    faulty_proxy.clear()
    connector.wait_for_ack(connector.standin.event_ids[-1], timeout=20)

    # The platform refuses the stream token.
    connector.standin.fail_stream(401, times=None)
    connector.standin.drop_connections()
    wait_for(
        functools.partial(reports, daemon, "stream", "401"),
        timeout=20,
        what="/healthz to report the refused stream",
        context=daemon.tail,
    )
    exposure.scrape(daemon)
    assert daemon.terminate() == 0
    assert "rejected the credentials (HTTP 401" in daemon.output()
    assert "denied API key *** of user connector" in daemon.output()
    assert "OpenCTI refused the stream token (HTTP 401" in daemon.output()
    exposure.check(daemon)


def test_a_token_opencti_refuses_reveals_no_secret_in_json_logs(
    e2e_harness: Harnesses, es_settings: ElasticsearchSettings, exposure: Exposure
) -> None:
    connector = e2e_harness(env={"OPENCTI_TOKEN": WRONG_TOKEN, "CONNECTOR_LOG_FORMAT": "json"})
    connector.es_settings = msgspec.structs.replace(es_settings, api_key=Secret(API_KEY_PAIR))
    daemon = connector.spawn("run")
    daemon.wait_for_line(r"cannot register with OpenCTI", timeout=30)
    exposure.scrape(daemon)
    assert daemon.terminate() == 0
    for line in daemon.lines():
        json.loads(line)  # still one JSON object per line
    exposure.check(daemon)


def test_a_tls_failure_reveals_no_password(
    e2e_harness: Harnesses, elasticsearch_url: str, es_settings: ElasticsearchSettings
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    with FaultyProxy(upstream_of(elasticsearch_url), server_ssl=context) as proxy:
        connector = e2e_harness(env={"OPENCTI_TOKEN": TOKEN})
        connector.es_settings = msgspec.structs.replace(
            es_settings, hosts=(proxy.url,), username="connector", password=Secret(PASSWORD)
        )
        process = connector.run("run", timeout=30)
        check = connector.run("check", timeout=60)
    assert process.returncode == 1
    assert "TLS certificate verify failed" in process.output()
    assert check.returncode == 1
    assert re.search(r"^FAIL elasticsearch: .*TLS certificate verify failed", check.output(), re.M)
    Exposure().check(process, check)


def test_an_unreachable_cloud_deployment_reveals_no_cloud_auth(
    e2e_harness: Harnesses, exposure: Exposure
) -> None:
    cloud = {
        "CLOUD_ID": CLOUD_ID,
        "CLOUD_AUTH": CLOUD_AUTH,
        "ELASTICSEARCH_HOSTS": None,
        "OPENCTI_TOKEN": TOKEN,
    }
    connector = e2e_harness(env=cloud)
    daemon = connector.spawn("run")
    daemon.wait_for_line(r"Elasticsearch is not reachable \(retrying", timeout=30)
    exposure.scrape(daemon)
    assert daemon.terminate() == 0
    check = connector.run("check", timeout=60)
    assert check.returncode == 1
    assert re.search(r"^FAIL elasticsearch: ", check.output(), re.M)
    exposure.check(daemon, check)


def test_check_with_wrong_credentials_everywhere_reveals_no_secret(
    e2e_harness: Harnesses, faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    connector = e2e_harness(env={"OPENCTI_TOKEN": WRONG_TOKEN})
    connector.es_settings = msgspec.structs.replace(
        es_settings, hosts=(faulty_proxy.url,), api_key=Secret(API_KEY_ENCODED)
    )
    faulty_proxy.inject(unauthorized_reply(), times=None)
    check = connector.run("check", timeout=60)
    assert check.returncode == 1
    fails = [line for line in check.lines() if line.startswith("FAIL")]
    assert [line.split(":")[0] for line in fails] == ["FAIL opencti", "FAIL elasticsearch"], fails
    assert "rejected the credentials (HTTP 401" in fails[1]
    Exposure().check(check)


def test_check_warns_about_an_administrator_token_and_not_about_a_dedicated_user(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness()
    connector.standin.add_user(TOKEN, name="admin-for-everything", capabilities=["BYPASS"])
    dedicated = "sec-dedicated-token-3e4f5a6b7c"
    connector.standin.add_user(
        dedicated, name="elastic-connector", capabilities=["KNOWLEDGE", "TAXIIAPI"]
    )
    stream = connector.standin.add_stream_collection("8a5b1c2d-indicators", public=False)

    admin = connector.run("check", OPENCTI_TOKEN=TOKEN)
    user = connector.run("check", OPENCTI_TOKEN=dedicated, CONNECTOR_LIVE_STREAM_ID=stream.id)

    assert admin.returncode == 0, admin.output()
    warnings = [line for line in admin.lines() if line.startswith("WARN opencti:")]
    assert len(warnings) == 1, admin.output()
    assert "'admin-for-everything' is an administrator (BYPASS)" in warnings[0]
    assert user.returncode == 0, user.output()
    assert "OK   opencti: reached" in user.output()
    assert not [line for line in user.lines() if line.startswith("WARN opencti:")], user.output()
    assert TOKEN not in admin.output()
    assert dedicated not in user.output()
