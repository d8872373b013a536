Feature: A customer cancels an order, and money taken goes back exactly once
  A customer may cancel an order (POST /orders/{id}/cancel). Orders cancels it
  once, however often and however many times at once it is asked, and
  publishes OrderCancelled. Billing refunds a charged order, once, and
  notifications emails the customer that the order was cancelled and, when
  money went back, about the refund. A cancelled order's charges minus
  refunds always come to 0, and nothing is refunded that was not charged.

  Scenario: Cancelling a paid order refunds it once
    Given customer 5 has a paid order of 3 of item 2
    When the customer cancels the order
    Then the cancel is accepted, and the order says it is cancelled
    And exactly one refund of 300 is made for the order
    And the customer is emailed once that the order was cancelled
    And the customer is emailed once about the refund
    And the order's status says it was cancelled, and its money went back

  Scenario: Cancelling twice changes nothing the second time
    Given customer 5 has a paid order of 1 of item 2
    When the customer cancels the order
    And the customer cancels the order again
    Then the second cancel answers that the order was already cancelled
    And exactly one refund of 100 is made for the order
    And the order is cancelled once, for the reason "cancelled by the customer"

  Scenario: Ten cancels of one order at once
    Given customer 5 has a paid order of 1 of item 2
    When the customer cancels the order 10 times at once
    Then one cancel is accepted and the 9 others answer that it was already cancelled
    And the order is cancelled once, for the reason "cancelled by the customer"
    And exactly one refund of 100 is made for the order

  Scenario: Cancels racing the payments
    When 5 customers each order 2 of item 2 and cancel it right away
    Then every cancel is accepted
    And for each of those orders, charges minus refunds come to 0, and nothing is refunded that was not charged

  Scenario: Cancelling an order that does not exist
    When a customer cancels an order that does not exist
    Then the cancel answers 404, naming the order
