@fuzz
Feature: The orders API holds up under generated input
  Hundreds of requests generated from the OpenAPI description of the orders
  API, valid and invalid, find no server error, no stack trace in a response,
  no answer the description does not allow, and no crash.

  Scenario: Fuzzing the orders API from its description
    When the orders API is fuzzed with 100 examples per operation
    Then every response matched the description, without a server error or a stack trace
    And orders is still up, never restarted
