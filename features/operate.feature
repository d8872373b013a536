@operate
Feature: Operating the chain: the dead letters listed
  A message no service can process is set aside, once by each service that
  reads it, with the reason. `make dlq` lists them: when, which service, why,
  where each came from, its type and order, and the first bytes it carried;
  it keeps one service's or one reason's.

  Scenario: Poison messages are listed with who set each aside and why
    When a poison message of each kind is published
    Then the dead-letter listing shows each of them once for each service, with its reason
    And the listing of billing's dead letters shows billing's alone
    And the listing of dead letters that broke their contract shows those alone
