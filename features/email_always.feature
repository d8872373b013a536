Feature: Every captured payment ends in an email
  Whatever billing charges, notifications emails about: no payment is left
  without its email.

  Scenario: A burst of orders is emailed in full
    When 20 customers each place an order at the same time
    Then every one of those orders is paid once and emailed once

  Scenario: No payment so far is left without its email
    Given customer 7 has ordered 1 of item 3 under an order number of their own
    And the order has been paid and emailed
    Then every payment captured so far is followed by its email
