@operate
Feature: Operating the chain: dead letters listed and sent back, the read model rebuilt
  A message a service cannot process is set aside, once by each service that
  reads it, with the reason. `make dlq` lists them: where each is, when, which
  service, why, where it came from, its type and order, and the first bytes it
  carried. Once the cause is fixed, `make redrive` sends chosen ones back to
  the service that set each aside, each at most once; the service's own ledger
  keeps the effect exactly once. `make rebuild` rebuilds the order page's read
  model from the topic while the stack runs.

  Scenario: Poison messages are listed with who set each aside and why
    When a poison message of each kind is published
    Then the dead-letter listing shows each of them once for each service, with its reason
    And the listing of billing's dead letters shows billing's alone
    And the listing of dead letters that broke their contract shows those alone

  @local_stack
  Scenario: An order set aside for a missing price is sent back once the price is set, and charged once
    Given billing charges only for the items it has a price for, and item 9 has none
    When customer 4 orders 2 of item 9, and places the same order again
    Then billing sets both copies aside, saying item 9 has no price
    And the order page counts 2 more dead letters
    When billing is given a price of 300 for item 9
    And those dead letters are sent back
    Then exactly one payment of 600 is captured for the order
    And exactly one email about the order is sent to "user4@test.com"
    And billing skips the second copy as a duplicate
    And sending them back again sends nothing, saying they were sent back before

  @local_stack
  Scenario: A dead letter sent back that fails again is set aside once more, and nothing loops
    Given billing charges only for the items it has a price for, and item 9 has none
    When customer 4 orders 1 of item 9
    Then billing sets the order aside, saying item 9 has no price
    When those dead letters are sent back
    Then billing sets the copy aside again, with where it read it from and its reason
    And nothing more is set aside for the order

  @local_stack
  Scenario: A redrive killed halfway sends nothing back, and the next one sends each back once
    Given billing charges only for the items it has a price for, and item 9 has none
    When 60 orders of item 9 are placed
    Then billing sets all 60 aside
    When billing is given a price of 300 for item 9
    And a redrive of them is killed while it is sending them back
    Then none of what it sent is visible, though it had sent some
    When those dead letters are sent back
    Then each of the 60 orders is charged exactly once and emailed exactly once

  @local_stack
  Scenario: The read model rebuilt from the topic equals the live one, and repairs a damaged one
    Given 5 orders that were charged and emailed, and one that was declined
    When the read model is rebuilt
    Then the rebuild says the rebuilt rows equal the live ones
    When the live read model loses one order's payment and another order altogether
    And the read model is rebuilt
    Then the rebuild replaced those two orders alone
    And the order page shows both as emailed again
