"""Every setting of the table in docs/running.md is checked where it is read: a bad value
is one line naming the variable, the value and what is expected."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import StackConfig
from eventbus.settings import EX_CONFIG, Env, SettingError, Settings
from services.billing.service import read_settings as billing
from services.notifications.service import read_settings as notifications
from services.orders.service import read_settings as orders

ROOT = Path(__file__).resolve().parent.parent

BAD = [
    (billing, "UNIT_PRICE", "abc", "UNIT_PRICE must be a whole number of minor units, got 'abc'"),
    (billing, "UNIT_PRICE", "-5", "UNIT_PRICE must be a whole number of minor units, got '-5'"),
    (billing, "UNIT_PRICE", "1.5", "UNIT_PRICE must be a whole number of minor units, got '1.5'"),
    (billing, "CREDIT_LIMIT", "lots", "CREDIT_LIMIT must be a whole number of minor units, got 'lots'"),
    (billing, "ITEM_PRICES", "2:150", "ITEM_PRICES must be itemId=unit price pairs separated by commas"),
    (billing, "ITEM_PRICES", "2=x", "ITEM_PRICES must be itemId=unit price pairs"),
    (
        orders,
        "KAFKA_BOOTSTRAP_SERVERS",
        "localhost",
        "KAFKA_BOOTSTRAP_SERVERS must be host:port pairs separated by commas",
    ),
    (orders, "KAFKA_BOOTSTRAP_SERVERS", "a:9092,b:99999", "KAFKA_BOOTSTRAP_SERVERS must be host:port pairs"),
    (orders, "EVENTS_TOPIC", "orders events", "EVENTS_TOPIC must be a Kafka topic name"),
    (orders, "DEAD_LETTER_TOPIC", "dlq/1", "DEAD_LETTER_TOPIC must be a Kafka topic name"),
    (orders, "DATA_DIR", "/dev/null/data", "DATA_DIR must be a folder this user can write in, got '/dev/null/data'"),
    (billing, "DATABASE_URL", "mysql://db/billing", "DATABASE_URL must be a PostgreSQL URL such as postgresql://"),
    (billing, "DATABASE_URL", "postgresql://db:port/billing", "DATABASE_URL must be a PostgreSQL URL"),
    (billing, "DATABASE_URL", "postgresql://db:5432", "DATABASE_URL must be a PostgreSQL URL"),
    (
        billing,
        "DATABASE_URL",
        "postgresql://me:secret@db:99999/billing",
        "DATABASE_URL must be a PostgreSQL URL such as postgresql://user:password@host:5432/database,"
        " got 'postgresql://me:***@db:99999/billing'",
    ),
    (billing, "DATABASE_URL", "postgresql://me:secret@db.example:6432/billing", None),
    (orders, "LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
    (orders, "CONSUMER_INSTANCE_ID", "billing 1", "CONSUMER_INSTANCE_ID must be letters, digits"),
    (orders, "HTTP_HOST", "not a host", "HTTP_HOST must be a host name or IP address"),
    (orders, "HTTP_PORT", "70000", "HTTP_PORT must be a TCP port number from 1 to 65535, got '70000'"),
    (orders, "MAX_BODY_BYTES", "0", "MAX_BODY_BYTES must be a whole number of bytes, got '0'"),
    (notifications, "EMAIL_DOMAIN", "test com", "EMAIL_DOMAIN must be a domain name, such as test.com"),
    (notifications, "MAILER_FAILURE_RATE", "1", "MAILER_FAILURE_RATE must be a number from 0 up to 1 (not 1)"),
    (billing, "METRICS_PORT", "0", "METRICS_PORT must be a TCP port number from 1 to 65535, got '0'"),
    (notifications, "METRICS_HOST", "a host", "METRICS_HOST must be a host name or IP address"),
    (orders, "OTEL_TRACES_EXPORTER", "jaeger", "OTEL_TRACES_EXPORTER must be one of NONE, ZIPKIN, OTLP, got 'jaeger'"),
    (orders, "TRACE_VIEW", "http://127.0.0.1:9411/zipkin", "TRACE_VIEW must be a URL with {traceId} in it"),
    (notifications, "MAILER_FAILURE_RATE", "nan", "MAILER_FAILURE_RATE must be a number from 0 up to 1"),
    (StackConfig.from_env, "STACK_DIR", "/dev/null/run", "STACK_DIR must be a folder this user can write in"),
    (StackConfig.from_env, "REPLICAS", "0", "REPLICAS must be a whole number from 1 to 16, got '0'"),
    (StackConfig.from_env, "KAFKA_PORT", "x", "KAFKA_PORT must be a TCP port number from 1 to 65535, got 'x'"),
    (StackConfig.from_env, "KAFKA_CONTROLLER_PORT", "9092", "KAFKA_CONTROLLER_PORT must be a port of its own"),
    (StackConfig.from_env, "ORDERS_PORT", "9092", "ORDERS_PORT must be a port other than KAFKA_PORT's"),
    (StackConfig.from_env, "ORDERS_PORT", "", None),  # empty means the default
    (StackConfig.from_env, "STORE", "mysql", "STORE must be sqlite or postgres, got 'mysql'"),
    (StackConfig.from_env, "POSTGRES_PORT", "0", "POSTGRES_PORT must be a TCP port number from 1 to 65535"),
    (StackConfig.from_env, "METRICS", "yes", "METRICS must be 1 (start Prometheus, scraping every process) or 0"),
    (StackConfig.from_env, "PROMETHEUS_PORT", "0", "PROMETHEUS_PORT must be a TCP port number from 1 to 65535"),
]


@pytest.mark.parametrize(("read", "name", "value", "message"), BAD, ids=[f"{n}={v}" for _, n, v, _ in BAD])
def test_a_bad_setting_is_one_line_naming_it_its_value_and_what_is_expected(read, name, value, message):
    if message is None:
        read(Env({name: value}))
        return
    with pytest.raises(SettingError) as raised:
        read(Env({name: value}))
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_good_settings_are_read_as_given(tmp_path):
    settings, http = orders(
        Env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "kafka:19092,[::1]:9092",
                "DATA_DIR": str(tmp_path / "new" / "folder"),
                "LOG_LEVEL": "debug",
                "HTTP_HOST": "0.0.0.0",
                "HTTP_PORT": "8080",
                "CONSUMER_INSTANCE_ID": "orders-1",
            }
        )
    )
    assert (settings.bootstrap_servers, settings.log_level, settings.instance) == (
        "kafka:19092,[::1]:9092",
        "DEBUG",
        "orders-1",
    )
    assert (http.host, http.port) == ("0.0.0.0", 8080)
    _, mail = notifications(Env({"EMAIL_DOMAIN": "example.org", "MAILER_FAILURE_RATE": "0.3"}))
    assert (mail.domain, mail.failure_rate) == ("example.org", 0.3)


def test_unset_settings_take_the_documented_defaults():
    assert Settings.from_env("billing", Env({})) == Settings(service="billing")
    assert StackConfig.from_env(Env({})) == StackConfig()


@pytest.mark.parametrize("service", ["orders", "billing", "notifications"])
def test_a_service_started_on_its_own_exits_with_the_line_and_ex_config(service, tmp_path):
    """As under compose: no traceback, and an exit code that says do not restart."""
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env={"LOG_LEVEL": "LOUD", "DATA_DIR": str(tmp_path), "PATH": ""},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EX_CONFIG
    assert done.stderr == "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'\n"


@pytest.mark.parametrize(
    ("service", "setting"), [("billing", "METRICS_PORT"), ("notifications", "METRICS_PORT"), ("orders", "HTTP_PORT")]
)
def test_a_port_another_process_holds_is_named_in_one_line(service, setting, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", f"services.{service}"],
            env={setting: str(port), "DATA_DIR": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "PATH": ""},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == EX_CONFIG
    assert done.stderr == f"{setting} must be a port no other process listens on, got '{port}'\n"


def test_the_endpoint_of_the_chosen_traces_exporter_must_be_a_url():
    env = Env({"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_ZIPKIN_ENDPOINT": "127.0.0.1:9411"})
    with pytest.raises(SettingError, match="OTEL_EXPORTER_ZIPKIN_ENDPOINT must be an http:// or https:// URL"):
        Settings.from_env("billing", env)
    assert Settings.from_env("billing", Env({"OTEL_TRACES_EXPORTER": "OTLP"})).traces_exporter == "otlp"
