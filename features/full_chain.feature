Feature: An order flows through the whole chain
  A customer places an order over HTTP. Billing charges it exactly once,
  notifications emails the customer exactly once, and the order's status
  follows it along the way: created, paid, emailed.

  Scenario Outline: Every order is created, paid and emailed
    When customer <customer> orders <quantity> of item <item>
    Then the order is accepted with a new order number
    And exactly one payment of <amount> is captured for the order
    And exactly one email about the order is sent to "<address>"
    And the order's status says it was created, paid and emailed

    Examples: Each item costs 100 by default
      | customer | quantity | item | amount | address           |
      | 1        | 1        | 2    | 100    | user1@test.com    |
      | 7        | 2        | 3    | 200    | user7@test.com    |
      | 42       | 5        | 9    | 500    | user42@test.com   |
      | 1000     | 10       | 1    | 1000   | user1000@test.com |
