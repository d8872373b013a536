"""A schemathesis check of our own, loaded with SCHEMATHESIS_HOOKS: no response
may carry a Python stack trace."""

import schemathesis


@schemathesis.check
def no_stack_trace(ctx, response, case):
    if "Traceback (most recent call last)" in response.text or 'File "/' in response.text:
        raise AssertionError("a stack trace reached the client")
