Feature: Order numbers
  An order placed without a number gets the next one: 1, 2, 3, ... A customer
  may choose a number of their own instead; it is simply taken, and the
  numbering skips it when it gets there. Every number given out is one the
  customer can use to place the same order again.

  Scenario: A customer's own number, however large, does not move the numbering
    Given a customer has taken the largest order number there is
    When customer 1 orders 1 of item 3
    Then the order is accepted with a new order number
    And the same order can be placed again under that number
