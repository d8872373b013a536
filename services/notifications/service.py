"""notifications: emails the customer once per kind of email and order, and
emits EmailSent naming the kind (its `template`): the order is confirmed once
its payment is captured, cancelled (OrderCancelled), its charge refunded
(PaymentRefunded)."""

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from eventbus import tracing
from eventbus.consumer import Handler, Rejected, TransientError
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.settings import HOST, Env, Settings, checked
from eventbus.store import Store, Transaction, open_store
from generated.email_sent import EmailSent
from generated.order_cancelled import OrderCancelled
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_refunded import PaymentRefunded

log = logging.getLogger("notifications")
CONFIRMED = "order_confirmed"
TEMPLATES = {PaymentCaptured: CONFIRMED, OrderCancelled: "order_cancelled", PaymentRefunded: "payment_refunded"}


def address_for(user_id: int, domain: str) -> str:
    return f"user{user_id}@{domain}"


def which_email(event: PaymentCaptured | OrderCancelled | PaymentRefunded) -> str:
    """The template of the email an event owes the customer."""
    return TEMPLATES[type(event)]


class MailerUnavailable(TransientError):
    pass


class LogMailer:
    """Simulates an email provider: logs each email and records it in a mailbox.

    Like a real provider's idempotency key, the orderId and the template make a
    resend after a crash a no-op. `failure_rate` makes a share of sends fail, to
    show retries. The brief's confirmation is logged as the brief shows it,
    `Sending email {orderId, to, ts}`; the others name their template.
    """

    def __init__(self, store: Store, failure_rate: float = 0.0, chance: Callable[[], float] = random.random):
        self._store = store
        self._failure_rate = failure_rate
        self._chance = chance
        store.create_table(
            "emails", {"orderId": int, "template": str, "to": str, "ts": str}, pk=("orderId", "template")
        )

    def send(self, email: EmailSent) -> None:
        with tracing.span("send email", **{"email.order_id": email.orderId, "email.template": email.template}) as span:
            if self._chance() < self._failure_rate:
                raise MailerUnavailable("simulated mailer failure")
            with self._store.transaction() as tx:
                new = tx.execute(
                    'INSERT INTO "emails" ("orderId", "template", "to", "ts") VALUES (?, ?, ?, ?)'
                    ' ON CONFLICT ("orderId", "template") DO NOTHING',
                    (email.orderId, email.template, email.to, email.ts),
                ).rowcount
            span.set_attribute("email.sent", bool(new))  # False: the provider had it already (a resend)
            if new:
                kind = "email" if email.template == CONFIRMED else f"{email.template} email"
                log.info("Sending %s %s", kind, {"orderId": email.orderId, "to": email.to, "ts": email.ts})


def create_tables(store: Store) -> None:
    store.create_table("recipients", {"orderId": int, "userId": int}, pk="orderId")


def handlers(mailer: LogMailer, domain: str, clock: Callable[[], str] = timestamp) -> dict[type, Handler]:
    def remember_customer(order: OrderCreated, tx: Transaction) -> list:
        tx.execute(
            'INSERT INTO recipients ("orderId", "userId") VALUES (?, ?)'
            ' ON CONFLICT ("orderId") DO UPDATE SET "userId" = excluded."userId"',
            [order.orderId, order.userId],
        )
        return []

    def email(event: PaymentCaptured | OrderCancelled | PaymentRefunded, tx: Transaction) -> list[EmailSent]:
        row = tx.execute('SELECT "userId" FROM recipients WHERE "orderId" = ?', [event.orderId]).fetchone()
        if row is None:
            raise Rejected(f"no OrderCreated seen for orderId {event.orderId}")
        sent = EmailSent(orderId=event.orderId, to=address_for(row[0], domain), ts=clock(), template=which_email(event))
        mailer.send(sent)
        return [sent]

    def skip(event: PaymentCaptured | OrderCancelled | PaymentRefunded) -> None:
        log.info("Notifications skipped duplicate %s for orderId %s", type(event).__name__, event.orderId)

    def once(ledger_name: str) -> Handler:
        """One email of a kind per order: the ledger records each orderId under the kind's name."""
        return Handler(email, once_per=lambda event: event.orderId, ledger_name=ledger_name, on_duplicate=skip)

    return {  # named as the ledger has recorded them since each kind had a function of its own
        OrderCreated: Handler(remember_customer),
        PaymentCaptured: once("notifications.send_email"),
        OrderCancelled: once("notifications.send_cancellation"),
        PaymentRefunded: once("notifications.send_refund"),
    }


@dataclass(frozen=True)
class MailSettings:
    domain: str = "test.com"
    failure_rate: float = 0.0


def read_settings(env: Env) -> tuple[Settings, MailSettings]:
    mail = MailSettings(
        domain=env.text("EMAIL_DOMAIN", MailSettings.domain, HOST, "a domain name, such as test.com"),
        failure_rate=env.fraction("MAILER_FAILURE_RATE", MailSettings.failure_rate, "a number from 0 up to 1 (not 1)"),
    )
    return Settings.from_env("notifications", env), mail


def main() -> None:
    settings, mail = checked(read_settings)
    mailer = LogMailer(open_store(settings, "mailbox"), mail.failure_rate)
    Service(settings, handlers(mailer, mail.domain), create_tables).run()
