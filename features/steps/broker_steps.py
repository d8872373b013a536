"""A broker of three killed for good during a burst of orders, then started again."""

from behave import then, when

from features.driver import wait_until


@when("{count:d} orders are placed over {seconds:d} seconds while the broker leading most of them is killed")
def step_burst_leader_killed(context, count, seconds):
    faults = context.faults

    def kill_the_leader() -> None:
        context.killed = faults.leading_broker()
        faults.stack.supervisor.kill(context.killed)
        faults.kills[context.killed] = 1

    context.add_cleanup(start_again, context)  # should the scenario fail before it does
    context.burst = faults.burst(count, per_second=count / seconds, faults_at={0.3: kill_the_leader})
    context.fault = "the leading broker of three killed"


@when("the killed broker is started again")
def step_start_again(context):
    start_again(context)


@then("it is back in sync with the other two within {seconds:d} seconds")
def step_back_in_sync(context, seconds):
    faults = context.faults
    wait_until(lambda: faults.in_sync_everywhere(context.killed), f"{context.killed} is back in sync", seconds)


def start_again(context) -> None:
    killed = getattr(context, "killed", None)
    if killed and killed not in context.faults.stack.supervisor.children:
        context.faults.stack.start_broker(killed)
