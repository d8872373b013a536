@browser
Feature: Watching an order on the order page
  The page orders serves at / lets a person place an order and watch it go
  along the chain, accepted, created, paid and emailed, as it happens, and
  cancel it: a chain that stopped ends in red where it stopped.

  Scenario: An order placed on the page reaches "emailed" before the customer's eyes
    Given the order page is open in a browser
    When a customer orders 3 of item 4 on the page
    Then the page shows the order accepted
    And the page shows the order emailed, with its amount of 300, without being reloaded

  Scenario: A cancelled order's chain ends in red, refunded, and the console stays clean
    Given the order page is open in a browser
    And customer 5 has a paid order of 2 of item 4
    When the customer cancels the order on the page
    Then the page shows the chain stopped in red at cancelled and refunded, with 200 refunded
    And the browser logged no error on its console

  Scenario: A declined order's chain ends in red
    Given the order page is open in a browser
    When customer 5 orders 600 of item 4
    Then the page shows the chain stopped in red at declined and cancelled, with nothing refunded
