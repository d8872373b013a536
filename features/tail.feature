Feature: Watching the events go by
  `make tail` shows the events on the topics as they happen, one line each:
  the type, the order, a short event id, the trace, and what the event says.
  It can follow a single order, and Ctrl-C ends it cleanly.

  Scenario: The tail follows one order through the chain
    Given the tail follows an order number of a customer's own
    When customer 8 orders 2 of item 5 under that number
    Then the tail shows the order created, paid and emailed, each in the order's trace
    And the tail shows the payment of 200 and the email to "user8@test.com"
    And the tail stops cleanly when interrupted
