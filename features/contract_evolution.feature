Feature: Contracts evolve while the services run
  Orders, billing and notifications are deployed one at a time, so for a while
  a newer orders writes events whose contract the running billing and
  notifications were not built with. They read the fields they know and ignore
  the rest; an event they cannot read is set aside with the reason; and a change
  to a contract that would break a reader is refused before it ships.

  Scenario: An order from a newer orders, with a field the readers do not know, is charged and emailed
    When a newer orders announces an order of 2 of item 3 by customer 5, with a gift note its contract version 2 added
    Then exactly one payment of 200 is captured for the order
    And exactly one email about the order is sent to "user5@test.com"
    And nothing about the order is set aside as unreadable

  Scenario: An order that breaks its contract is set aside, naming the version it claims
    When a newer orders announces an order whose quantity is "many", claiming version 3 of its contract
    Then billing sets the order aside as unreadable, saying it claims OrderCreated version 3 and that its quantity is wrong
    And no payment is captured for the order

  Scenario: An order announced only as a new major version is skipped by readers that do not know it
    When a newer orders announces an order only as a new major version of OrderCreated
    Then no payment is captured for the order
    And nothing about the order is set aside as unreadable

  Scenario Outline: A contract change that would break a reader is refused before it ships
    Given a scratch copy of the contracts
    When <change> in the scratch copy
    Then the compatibility check refuses it, saying "<message>"

    Examples:
      | change                                                | message                                                                                                      |
      | the quantity is removed from OrderCreated             | OrderCreated: field 'qty' removed; readers of version 1 require it                                           |
      | the quantity of OrderCreated is renamed to "quantity" | OrderCreated: field 'quantity' added as required; events of version 1 lack it                                |
      | the largest quantity of OrderCreated becomes 10       | OrderCreated: field 'qty' maximum 1000 -> 10; events of version 1 may hold values this version refuses       |
      | the amount of PaymentCaptured becomes a number        | PaymentCaptured: field 'amount' type integer -> number; readers of version 1 refuse values this version allows |

  Scenario: Adding an optional field passes the check
    Given a scratch copy of the contracts
    When an optional gift note is added to OrderCreated in the scratch copy
    Then the compatibility check passes
