@multihost
Feature: State that holds past one host
  With its state in PostgreSQL, every process of the stack runs from a folder
  of its own, as it would on a host of its own: replicas share nothing but the
  database and Kafka. A billing that starts on a new, empty host still knows
  every order it charged; two orders processes never hand out one number
  twice; and whatever dies, the database included, effects happen once.

  Scenario: Orders replayed to billing on a new, empty host are not charged again
    Given 20 orders have been charged and emailed
    When billing moves to a new host with an empty folder
    And the 20 orders are placed again
    Then billing on the new host skips each of them as a duplicate
    And no payment was captured again

  Scenario: Two orders processes on two hosts number and replay orders as one
    Given a second orders process on another host
    When 30 orders without a number and 15 with numbers of their own are placed on both hosts at once
    Then the orders without a number all got different numbers
    And each number of their own was created once and replayed or refused once
    And every order was announced only with its own details

  Scenario: The database frozen: orders are refused quickly, then accepted again
    When the database is frozen
    Then a new order is refused within 2 seconds, saying the database cannot be reached
    And the health check names the database as missing
    When the database is thawed
    Then a new order is accepted again

  Scenario: Processes and the database die during a burst of orders
    When 120 orders are placed over 12 seconds while billing, notifications, orders and the database are killed and the database is frozen for 5 seconds
    Then every accepted order is charged once and emailed once
    And copies of an event on the topic share its id
    And nothing is left waiting in any outbox
