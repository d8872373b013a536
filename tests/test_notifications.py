"""notifications emails each paid order's customer once and says so with EmailSent."""

import logging

import pytest

from eventbus.consumer import Rejected
from eventbus.store import Store, open_store
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from services.notifications.service import LogMailer, MailerUnavailable, address_for, create_tables, handlers

TS = "2026-11-27T10:00:00.000Z"
EMAIL = EmailSent(orderId=1, to="user1@test.com", ts=TS)


@pytest.fixture
def mailbox(store_settings) -> Store:
    """The mailer's store: its own SQLite file, or the service's PostgreSQL database."""
    store = open_store(store_settings, "mailbox")
    yield store
    store.close()


@pytest.fixture
def mailer(mailbox) -> LogMailer:
    return LogMailer(mailbox)


@pytest.fixture
def service_handlers(store, mailer):
    create_tables(store)
    return handlers(mailer, "test.com", clock=lambda: TS)


def test_the_address_comes_from_the_user_id():
    assert address_for(42, "test.com") == "user42@test.com"


def test_each_order_is_emailed_once(mailer, mailbox, caplog):
    with caplog.at_level(logging.INFO, logger="notifications"):
        mailer.send(EMAIL)
        mailer.send(EmailSent(orderId=1, to="user1@test.com", ts="2026-11-27T10:05:00.000Z"))
    assert caplog.messages == [f"Sending email {{'orderId': 1, 'to': 'user1@test.com', 'ts': '{TS}'}}"]
    assert mailbox.query("SELECT * FROM mailbox") == [{"orderId": 1, "to": "user1@test.com", "ts": TS}]


def test_an_unavailable_mailer_fails_with_a_transient_error_and_sends_nothing(mailbox, caplog):
    mailer = LogMailer(mailbox, failure_rate=1.0, chance=lambda: 0.99)
    with pytest.raises(MailerUnavailable), caplog.at_level(logging.INFO, logger="notifications"):
        mailer.send(EMAIL)
    assert caplog.messages == []
    assert mailbox.query("SELECT * FROM mailbox") == []


def test_a_payment_for_an_order_never_seen_is_rejected(store, service_handlers):
    with pytest.raises(Rejected, match="orderId 1"), store.transaction() as tx:
        service_handlers[PaymentCaptured].handle(PaymentCaptured(orderId=1, amount=100, ts=TS), tx)


def test_a_payment_is_emailed_to_the_customer_who_ordered(store, service_handlers):
    with store.transaction() as tx:
        assert service_handlers[OrderCreated].handle(OrderCreated(1, userId=7, itemId=2, qty=1, ts=TS), tx) == []
        sent = service_handlers[PaymentCaptured].handle(PaymentCaptured(orderId=1, amount=100, ts=TS), tx)
    assert sent == [EmailSent(orderId=1, to="user7@test.com", ts=TS)]


def test_notifications_emails_once_per_order_id(service_handlers):
    assert service_handlers[PaymentCaptured].once_per(PaymentCaptured(orderId=5, amount=100, ts=TS)) == 5
