"""notifications emails each paid, cancelled or refunded order's customer once
per kind of email and says so with EmailSent, naming the template."""

import logging

import pytest

from eventbus.consumer import Rejected
from eventbus.store import Store, open_store
from generated.email_sent import EmailSent
from generated.order_cancelled import OrderCancelled
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_refunded import PaymentRefunded
from services.notifications.service import (
    LogMailer,
    MailerUnavailable,
    address_for,
    create_tables,
    handlers,
    which_email,
)

TS = "2026-11-27T10:00:00.000Z"
EMAIL = EmailSent(orderId=1, to="user1@test.com", ts=TS, template="order_confirmed")
CANCELLED = OrderCancelled(orderId=1, reason="cancelled by the customer", ts=TS)
REFUNDED = PaymentRefunded(orderId=1, amount=100, ts=TS)


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


def emails(mailbox) -> list[dict]:
    return mailbox.query('SELECT * FROM "emails" ORDER BY "orderId", "template"')


def test_each_order_is_emailed_once_per_template_and_the_confirmation_is_logged_as_the_brief_shows(
    mailer, mailbox, caplog
):
    later = "2026-11-27T10:05:00.000Z"
    with caplog.at_level(logging.INFO, logger="notifications"):
        mailer.send(EMAIL)
        mailer.send(EmailSent(orderId=1, to="user1@test.com", ts=later, template="order_confirmed"))
        mailer.send(EmailSent(orderId=1, to="user1@test.com", ts=later, template="order_cancelled"))
        mailer.send(EmailSent(orderId=1, to="user1@test.com", ts=later, template="order_cancelled"))
    assert caplog.messages == [
        f"Sending email {{'orderId': 1, 'to': 'user1@test.com', 'ts': '{TS}'}}",
        f"Sending order_cancelled email {{'orderId': 1, 'to': 'user1@test.com', 'ts': '{later}'}}",
    ]
    assert [(row["template"], row["ts"]) for row in emails(mailbox)] == [
        ("order_cancelled", later),
        ("order_confirmed", TS),
    ]


@pytest.mark.parametrize(
    "event, template",
    [
        (PaymentCaptured(orderId=1, amount=100, ts=TS), "order_confirmed"),
        (CANCELLED, "order_cancelled"),
        (REFUNDED, "payment_refunded"),
    ],
)
def test_which_email_each_event_owes_the_customer(event, template):
    assert which_email(event) == template


def test_an_unavailable_mailer_fails_with_a_transient_error_and_sends_nothing(mailbox, caplog):
    mailer = LogMailer(mailbox, failure_rate=1.0, chance=lambda: 0.99)
    with pytest.raises(MailerUnavailable), caplog.at_level(logging.INFO, logger="notifications"):
        mailer.send(EMAIL)
    assert caplog.messages == []
    assert emails(mailbox) == []


def test_a_payment_for_an_order_never_seen_is_rejected(store, service_handlers):
    with pytest.raises(Rejected, match="orderId 1"), store.transaction() as tx:
        service_handlers[PaymentCaptured].handle(PaymentCaptured(orderId=1, amount=100, ts=TS), tx)


def test_a_payment_is_emailed_to_the_customer_who_ordered(store, service_handlers):
    with store.transaction() as tx:
        assert service_handlers[OrderCreated].handle(OrderCreated(1, userId=7, itemId=2, qty=1, ts=TS), tx) == []
        sent = service_handlers[PaymentCaptured].handle(PaymentCaptured(orderId=1, amount=100, ts=TS), tx)
    assert sent == [EmailSent(orderId=1, to="user7@test.com", ts=TS, template="order_confirmed")]


def test_a_cancelled_and_refunded_order_is_emailed_about_each(store, service_handlers):
    with store.transaction() as tx:
        service_handlers[OrderCreated].handle(OrderCreated(1, userId=7, itemId=2, qty=1, ts=TS), tx)
        sent = service_handlers[OrderCancelled].handle(CANCELLED, tx) + service_handlers[PaymentRefunded].handle(
            REFUNDED, tx
        )
    assert [(email.to, email.template) for email in sent] == [
        ("user7@test.com", "order_cancelled"),
        ("user7@test.com", "payment_refunded"),
    ]


def test_notifications_emails_once_per_order_id_and_kind(service_handlers):
    """One ledger name per kind of email, each keyed by orderId."""
    kinds = [service_handlers[kind] for kind in (PaymentCaptured, OrderCancelled, PaymentRefunded)]
    assert [handler.ledger_name for handler in kinds] == [
        "notifications.send_email",
        "notifications.send_cancellation",
        "notifications.send_refund",
    ]
    assert [handler.once_per(event) for handler, event in zip(kinds, [EMAIL, CANCELLED, REFUNDED], strict=True)] == [
        1,
        1,
        1,
    ]
