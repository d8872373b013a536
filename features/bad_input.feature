Feature: Bad orders are refused clearly and publish nothing
  An order that breaks the order contract is refused with a clear message
  that names each problem, and nothing about it reaches the other services.

  Scenario Outline: A field with a bad value is named in the refusal
    When a customer sends an order whose <field> is <value>
    Then the order is refused as bad input naming "<field>"
    And nothing is published for that order

    Examples:
      | field  | value          |
      | qty    | zero           |
      | qty    | negative       |
      | qty    | a word         |
      | qty    | a fraction     |
      | qty    | missing        |
      | userId | missing        |
      | itemId | a word         |
      | coupon | an extra field |

  Scenario: A body that is not JSON is refused
    When a customer sends an order that is not JSON
    Then the order is refused with status 400 saying "not valid JSON"
    And nothing is published

  Scenario: A body not declared as JSON is refused
    When a customer sends an order declared as plain text
    Then the order is refused with status 415 saying "application/json"
    And nothing is published

  Scenario: A body that is too large is refused
    When a customer sends an order of a megabyte
    Then the order is refused with status 413 saying "larger than"
    And nothing is published
