@brokers3
Feature: Three brokers: one may be lost without losing an order
  With three Kafka brokers, every event is kept by all three, and a write is
  acknowledged only once two of them have it. So the broker that leads the
  orders' events may die in the middle of a burst of orders: the other two
  carry on, and every order the system accepted is still charged once and
  emailed once. Started again, the broker catches up and is back in sync.

  Scenario: The leading broker is killed during a burst of orders, then comes back
    When 30 orders are placed over 6 seconds while the broker leading most of them is killed
    Then every accepted order is charged once and emailed once
    And copies of an event on the topic share its id
    When the killed broker is started again
    Then it is back in sync with the other two within 60 seconds
