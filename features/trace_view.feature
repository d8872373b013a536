@browser @traces
Feature: Opening an order's trace from the order page
  Each order on the page links its trace id to that trace in the trace viewer.

  Scenario: An emailed order's trace opens in Zipkin and shows the three services
    Given the order page is open in a browser
    When a customer orders 2 of item 3 on the page
    Then the page shows the order accepted
    And the page shows the order emailed, with its amount of 200, without being reloaded
    When the order's trace is opened from the page
    Then the trace viewer shows orders, billing and notifications in that one trace
