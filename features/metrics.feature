@metrics
Feature: Metrics a Prometheus can scrape
  Each service says what its consumer did with each kind of event, how far
  behind it is, and what waits in its outbox.

  Scenario: Orders, a replay and an unreadable message show in every service's counts, and each catches up
    Given the counts each service reports so far
    And customer 1 has ordered 1 of item 2 under an order number of their own
    And the order has been paid and emailed
    When 3 customers each place an order at the same time
    And the same order is placed again
    And a message that cannot be read is published in a trace of its own
    Then billing counts at least 4 more OrderCreated events handled
    And billing counts at least 1 more OrderCreated events skipped as duplicates
    And notifications counts at least 4 more PaymentCaptured events handled
    And orders counts at least 4 more EmailSent events handled
    And orders counts at least 1 more OrderCreated events dead-lettered
    And billing counts at least 1 more OrderCreated events dead-lettered
    And notifications counts at least 1 more OrderCreated events dead-lettered
    And every service's consumer lag returns to 0 on every partition
    And orders reports its outbox emptied and how long its order requests took

  @local_stack
  Scenario: The stack's Prometheus scrapes every process, and alerts when one stops answering
    Given the stack's Prometheus scrapes every process of the stack
    When 20 orders are placed over 4 seconds while a billing process is frozen
    Then Prometheus alerts that the billing process is down
    When the billing process is thawed
    Then every accepted order is charged once and emailed once

  @browser @local_stack
  Scenario: Prometheus graphs the events each service handles and its lag while orders flow
    When orders are placed for 20 seconds, 15 a second
    Then Prometheus sees billing handle them and catch up
    And its graphs show the events each service handled per second and each process's lag
