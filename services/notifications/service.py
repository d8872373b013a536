"""notifications: emails the customer once per captured payment and emits EmailSent."""

import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlite_utils import Database

from eventbus import tracing
from eventbus.consumer import Handler, Rejected, TransientError
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.settings import HOST, Env, Settings, checked
from eventbus.store import Store
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured

log = logging.getLogger("notifications")


def address_for(user_id: int, domain: str) -> str:
    return f"user{user_id}@{domain}"


class MailerUnavailable(TransientError):
    pass


class LogMailer:
    """Simulates an email provider: logs each email and records it in a mailbox.

    Like a real provider's idempotency key, the orderId makes a resend after a
    crash a no-op. `failure_rate` makes a share of sends fail, to show retries.
    """

    def __init__(self, store: Store, failure_rate: float = 0.0, chance: Callable[[], float] = random.random):
        self._store = store
        self._failure_rate = failure_rate
        self._chance = chance
        store.db()["mailbox"].create({"orderId": int, "to": str, "ts": str}, pk="orderId", if_not_exists=True)

    def send(self, email: EmailSent) -> None:
        with tracing.span("send email", **{"email.order_id": email.orderId}) as span:
            if self._chance() < self._failure_rate:
                raise MailerUnavailable("simulated mailer failure")
            with self._store.transaction() as tx:
                new = tx.execute(
                    "INSERT OR IGNORE INTO mailbox (orderId, [to], ts) VALUES (?, ?, ?)",
                    (email.orderId, email.to, email.ts),
                ).rowcount
            span.set_attribute("email.sent", bool(new))  # False: the provider had it already (a resend)
            if new:
                log.info("Sending email %s", asdict(email))


def create_tables(db: Database) -> None:
    db["recipients"].create({"orderId": int, "userId": int}, pk="orderId", if_not_exists=True)


def handlers(mailer: LogMailer, domain: str, clock: Callable[[], str] = timestamp) -> dict[type, Handler]:
    def remember_customer(order: OrderCreated, tx: Database) -> list:
        tx.execute(  # plain SQL: sqlite-utils' upsert reads the table's schema on every call
            "INSERT INTO recipients (orderId, userId) VALUES (?, ?)"
            " ON CONFLICT (orderId) DO UPDATE SET userId = excluded.userId",
            [order.orderId, order.userId],
        )
        return []

    def send_email(payment: PaymentCaptured, tx: Database) -> list[EmailSent]:
        row = tx.execute("SELECT userId FROM recipients WHERE orderId = ?", [payment.orderId]).fetchone()
        if row is None:
            raise Rejected(f"no OrderCreated seen for orderId {payment.orderId}")
        email = EmailSent(orderId=payment.orderId, to=address_for(row[0], domain), ts=clock())
        mailer.send(email)
        return [email]

    def skip(payment: PaymentCaptured) -> None:
        log.info("Notifications skipped duplicate PaymentCaptured for orderId %s", payment.orderId)

    return {
        OrderCreated: Handler(remember_customer),
        PaymentCaptured: Handler(send_email, once_per=lambda payment: payment.orderId, on_duplicate=skip),
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
    mailer = LogMailer(Store(settings.database("mailbox")), mail.failure_rate)
    Service(settings, handlers(mailer, mail.domain), create_tables).run()
