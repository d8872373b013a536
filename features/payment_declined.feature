Feature: A payment above the credit limit is declined, and the order cancelled
  Billing charges an order only up to the customer's credit limit
  (CREDIT_LIMIT, 50000 minor units by default). Above it, billing declines
  the payment and says why; orders cancels the order with that reason, and
  notifications tells the customer. No payment is ever captured for it, so
  there is nothing to refund.

  Scenario: An order above the credit limit is declined and cancelled
    When customer 1 orders 600 of item 2
    Then the order is accepted with a new order number
    And its payment of 60000 is declined because it is above the credit limit
    And the order is cancelled once, for the reason billing gave
    And the customer is emailed once that the order was cancelled
    And no payment is captured and nothing is refunded for the order
    And the order's status says it was cancelled, and no money went back

  Scenario: An order at the credit limit itself is charged
    When customer 1 orders 500 of item 2
    Then the order is accepted with a new order number
    And exactly one payment of 50000 is captured for the order
    And exactly one email about the order is sent to "user1@test.com"
