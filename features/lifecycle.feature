@lifecycle
Feature: make run owns its processes
  Whatever ends `make run` (Ctrl-C, a closed terminal, a kill), Kafka and the
  services end with it, within seconds and without losing an order; a second
  stack never fights the first, and what a killed stack left is cleaned up.
  Each scenario runs `make run` in a terminal of its own, with its own data
  folder and ports.

  Scenario: Closing the terminal stops the whole stack
    Given make run is running in a terminal
    When the terminal is closed
    Then no process of the stack is left after 10 seconds

  Scenario: Killing the supervisor stops the whole stack
    Given make run is running in a terminal
    When the supervisor is killed with SIGKILL
    Then no process of the stack is left after 10 seconds

  Scenario: Killing make stops the whole stack
    Given make run is running in a terminal
    When make is killed with SIGKILL
    Then no process of the stack is left after 10 seconds

  Scenario: A second stack on the same folder or ports is refused
    Given make run is running in a terminal
    When a second make run starts on the same folder and ports
    Then it is refused within 20 seconds, naming the running stack's supervisor and how to stop it
    When a second make run starts from another folder on the same ports
    Then it is refused within 20 seconds, naming Kafka's pid and the stack's supervisor and how to stop it

  Scenario: A port taken by another program is named
    Given another program listens on the orders port
    When make run starts
    Then it is refused within 20 seconds, naming that program's pid and how to stop it

  Scenario: What a killed stack left running is stopped by the next start
    Given make run is running in a terminal
    And its orders process is frozen
    When the supervisor is killed with SIGKILL
    Then only the frozen process is left after 10 seconds
    When make run starts again
    Then it says "cleanup: stopped orders (pid <pid>), left running in <home> by a stack that was killed"
    And the frozen process is gone
    When 5 more orders are placed
    Then every order is charged once and emailed once

  Scenario: Stopping with the broker frozen takes at most 15 seconds and loses nothing
    Given make run is running in a terminal
    And 10 orders have been placed
    And the broker is frozen
    When 10 more orders are placed
    And make run is stopped with Ctrl-C
    Then everything has stopped within 15 seconds
    When make run starts again
    Then every order is charged once and emailed once

  Scenario: A bad setting stops the start with one line
    When the stack starts with UNIT_PRICE=abc
    Then it exits with code 78 and prints only "UNIT_PRICE must be a whole number of minor units, got 'abc'"
