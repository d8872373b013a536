"""Names for fields a test invents ("a field a newer writer added"), chosen so
that they are never in the contract: a user may add any field to any contract
(docs/contracts.md, "Changing a contract") and these tests must stay green."""

from eventbus import contracts


def field_not_in(contract: str, wanted: str = "coupon") -> str:
    """`wanted`, or the first of `wanted2`, `wanted3`, ... that `contract` lacks."""
    known = contracts.schema(contract)["properties"]
    name, n = wanted, 1
    while name in known:
        n += 1
        name = f"{wanted}{n}"
    return name
