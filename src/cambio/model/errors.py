"""The API's own error strings, used verbatim in rejection events (reference §1.5)."""

from __future__ import annotations

INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
INVALID_VOLUME = "EGeneral:Invalid arguments:volume"
INVALID_PRICE_ARG = "EGeneral:Invalid arguments:price"
INVALID_DISPLAYVOL = "EGeneral:Invalid arguments:displayvol"
INVALID_EXPIRETM = "EGeneral:Invalid arguments:expiretm"
VOLUME_MINIMUM = "EGeneral:Invalid arguments:volume minimum not met"
UNKNOWN_PAIR = "EQuery:Unknown asset pair"
UNKNOWN_ASSET = "EQuery:Unknown asset"
INSUFFICIENT_FUNDS = "EOrder:Insufficient funds"
UNKNOWN_ORDER = "EOrder:Unknown order"
INVALID_ORDER = "EOrder:Invalid order"
ORDER_MINIMUM = "EOrder:Order minimum not met"
COST_MINIMUM = "EOrder:Cost minimum not met"
TICK_SIZE = "EOrder:Tick size check failed"
POST_ONLY_AMEND = "EOrder:Post only order"
UNAVAILABLE = "EService:Unavailable"
CANCEL_ONLY = "EService:Market in cancel_only mode"
POST_ONLY_MODE = "EService:Market in post_only mode"
LIMIT_ONLY_MODE = "EService:Market in limit_only mode"
FUNDING_UNKNOWN_ASSET = "EFunding:Unknown asset"
FUNDING_INVALID_AMOUNT = "EFunding:Invalid amount"
FUNDING_UNKNOWN_REF = "EFunding:Unknown reference id"
FUNDING_INVALID_REF = "EFunding:Invalid reference id"
FUNDING_DISABLED = "EFunding:Funding temporarily disabled"
# Kraken's words for a withdrawal already being processed (WithdrawCancel's cancel-denied)
FUNDING_CANCEL_DENIED = "EFunding:Withdrawal already processing"


def invalid_price_decimals(pair_altname: str, decimals: int) -> str:
    return (
        f"EOrder:Invalid price:{pair_altname} price can only be specified up to "
        f"{decimals} decimals."
    )


# Order close reasons (Kraken's `reason` field)
REASON_USER = "User requested"
REASON_POST_ONLY = "Post only order"
REASON_IOC = "Immediate or cancel"
REASON_FOK = "Fill or kill"
REASON_EXPIRED = "Order expired"
REASON_STP = "Self trade prevention"
REASON_DMS = "Dead man's switch"
REASON_MPP = "Market price protection"
REASON_NO_LIQUIDITY = "No liquidity"
REASON_FUNDS = "Insufficient funds"
REASON_AMEND = "Order quantity amended below filled"
