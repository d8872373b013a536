Feature: Placing the same order again never charges or emails twice
  A customer may send the same order again, with the same order number and
  the same details. The order is announced again, billing recognises it and
  skips it, so there is still one payment and one email.

  Scenario: The same order placed again is skipped by billing
    Given customer 1 has ordered 1 of item 2 under an order number of their own
    And the order has been paid and emailed
    When the same order is placed again
    Then the order is accepted again as a replay
    And billing reports that it skipped the duplicate order
    And the order was announced twice but paid once and emailed once

  Scenario: An order number reused for a different order is refused
    Given customer 1 has ordered 1 of item 2 under an order number of their own
    When a different order is placed under the same order number
    Then it is refused as a conflict
    And the order was announced only once
