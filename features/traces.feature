@traces
Feature: One order's trace across every service
  Every step an order takes is a span of one trace, sent to a trace viewer:
  orders' request, each publish, each service's handling of each event and the
  email. A person asking "what happened to this order?" opens that one trace.

  Scenario: An order's trace holds every service's part, each after the send it reacted to
    When customer 1 orders 1 of item 2
    Then the order's trace shows orders, billing and notifications handling it, each after the send of its event
    And the order page links the order to that trace in the trace viewer

  Scenario: The trace of a replayed order shows billing skipping it
    Given customer 1 has ordered 1 of item 2 under an order number of their own
    And the order has been paid and emailed
    When the same order is placed again
    Then the replay's trace shows billing skipping the duplicate

  Scenario: The trace of a message no service can read says why it was set aside
    When a message that cannot be read is published in a trace of its own
    Then that trace shows each service setting the message aside, saying why
