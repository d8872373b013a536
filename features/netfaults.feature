@netfaults
Feature: Whichever host fails, every accepted order is emailed within 30 seconds
  Each broker, the database and each process of the services runs on a host
  of its own, with its own address. Billing and notifications run two
  replicas each on PostgreSQL. During a burst of orders one process stops
  answering for a while: paused, or its host cut off, from everyone or from
  the database or Kafka alone; a broker may also die. While a healthy replica
  of each service is left, every accepted order is still charged once and
  emailed once, none waits more than 30 seconds for its email, and when the
  fault ends nothing is doubled and nothing is left waiting. Orders and the
  database have one process each: they are paused for 10 seconds. Each fault
  starts on a whole cluster: a broker restarted by the fault before must be
  back in sync first, or two brokers would be out at once.

  Background:
    Given every broker holds an in-sync copy of every partition

  Scenario Outline: <who> <fault> for <lasting> seconds during a burst of orders
    When 80 orders are placed over 40 seconds while <who> is <fault> for <lasting> seconds
    Then every accepted order is charged once and emailed once
    And no accepted order waited longer than 30 seconds for its email
    And copies of an event on the topic share its id
    And nothing is left waiting in any outbox

    Examples:
      | who                             | fault                 | lasting |
      | billing's claim holder          | paused                | 35      |
      | billing's claim holder          | cut off               | 35      |
      | billing's claim holder          | cut from the database | 35      |
      | billing's claim holder          | cut from Kafka        | 35      |
      | notifications' claim holder     | paused                | 35      |
      | notifications' claim holder     | cut off               | 35      |
      | notifications' claim holder     | cut from the database | 35      |
      | notifications' claim holder     | cut from Kafka        | 35      |
      | the partition leader            | killed                | 35      |
      | the partition leader            | paused                | 35      |
      | the partition leader            | cut off               | 35      |
      | the controller quorum's leader  | cut off               | 35      |
      | orders                          | paused                | 10      |
      | the database                    | paused                | 10      |
