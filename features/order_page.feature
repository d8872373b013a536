@browser
Feature: Watching an order on the order page
  The page orders serves at / lets a person place an order and watch it go
  along the chain, accepted, created, paid and emailed, as it happens.

  Scenario: An order placed on the page reaches "emailed" before the customer's eyes
    Given the order page is open in a browser
    When a customer orders 3 of item 4 on the page
    Then the page shows the order accepted
    And the page shows the order emailed, with its amount of 300, without being reloaded
