@faults
Feature: Effects happen exactly once, whatever fails
  Processes die, the broker hangs, garbage reaches the topic. Every order the
  system accepted is still charged exactly once and emailed exactly once,
  counted in billing's ledger and in the mailer's mailbox. Copies of an event
  published again after a crash keep its id, so they change nothing. The same
  holds for the saga: a declined order is never charged, a cancelled one is
  refunded once exactly when it was charged, and each email goes out once.

  Billing and notifications run two replicas each here, sharing their ledger,
  and the mailer fails one send in five (each is retried with backoff).

  Scenario Outline: A process killed again and again during a burst of orders
    When 120 orders are placed over <seconds> seconds while <target> is killed 3 times
    Then every accepted order is charged once and emailed once
    And every payment captured so far is followed by its email
    And copies of an event on the topic share its id

    Examples:
      | target        | seconds |
      | billing       | 6       |
      | notifications | 6       |
      | orders        | 6       |
      | the broker    | 12      |

  Scenario: The broker hangs while orders arrive
    When 60 orders are placed while the broker is frozen
    Then every order was answered within 5 seconds
    When the broker is thawed
    Then every accepted order is charged once and emailed once

  Scenario: The broker hangs for longer than a consumer's session
    When 40 orders are placed over 25 seconds while the broker is frozen
    Then every order was answered within 5 seconds
    When the broker is thawed
    Then every accepted order is charged once and emailed once
    And the page follows every accepted order to its email

  Scenario: Poison among good orders
    When 4 poison messages of each kind are published among 60 good orders
    Then every accepted order is charged once and emailed once
    And the dead-letter topic holds exactly the poison, once for each service
    And events of an unknown type are skipped, not dead-lettered

  Scenario: Replicas die while partitions move between them
    When 150 orders are placed while a third replica of billing and of notifications joins and leaves, and replicas are killed meanwhile
    Then every accepted order is charged once and emailed once
    And copies of an event on the topic share its id

  Scenario: The saga while processes are killed: declined and cancelled orders among the others
    When 90 orders, every third above the credit limit and every third cancelled right away, are placed over 12 seconds while billing, notifications and orders are killed in turn
    Then every declined order is never charged, and every other order is charged once
    And every order is refunded once exactly when it was charged and cancelled
    And every order is emailed once per email it is owed
    And copies of an event on the topic share its id, whatever its kind

  Scenario: A relay paused in the middle of a batch wakes after another took its claim
    Given a relay that has sent the first of 3 outbox rows in a batch when it is paused
    When its claim passes to another relay, which publishes the 3 rows
    And the paused relay wakes and goes on with its batch
    Then Kafka takes the rest of its batch, but it marks none of the 3 rows sent
    And a reader of ours drops its copies that came after the other relay's, and reads the rows 1, 1, 2, 3
    And the two copies of row 1 share its ce_id
