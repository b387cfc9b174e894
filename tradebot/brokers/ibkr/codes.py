"""How tradebot reads IB's error messages: by code, in its own words, never by ib_async's guess.

ib_async 2.1 treats every error code outside a short hard-coded list as fatal for the order it
names and marks that order Cancelled locally, while the order is still working at IB (10349
"TIF was set to DAY based on order preset" is the classic). tradebot keeps its own reading:

* an error **never** changes the status of an order that IB has acknowledged: only IB's
  `orderStatus` (or the open/completed order lists) says an order is cancelled or filled;
* a short list of codes (`REJECTIONS`) means "this new order was refused" — and only for an
  order IB has not acknowledged yet (for a working order the same codes report a failed
  modification, which leaves the order as it was);
* connection codes drive the connection's life (1100 lost, 1101 restored with data lost —
  market data must be requested again —, 1102 restored with data kept, 326 client id in use);
* 162 is read by its text: a pacing violation (back off) is not "no data".

Everything here is pure: the adapter and the unit tests share it.
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "connectivity_lost",
    "restored_data_lost",
    "restored_data_kept",
    "farm_broken",
    "farm_ok",
    "client_id_in_use",
    "not_connected",
    "pacing",
    "no_data",
    "no_definition",
    "order_rejected",
    "order_info",
    "market_data",
    "info",
    "error",
]

CONNECTIVITY_LOST = frozenset({1100, 2110})
RESTORED_DATA_LOST = 1101
RESTORED_DATA_KEPT = 1102
FARM_BROKEN = frozenset({2103, 2105, 2157})
FARM_OK = frozenset({2104, 2106, 2107, 2108, 2119, 2158})
CLIENT_ID_IN_USE = 326
READ_ONLY = 321  # also "Error validating request" in general: read its text too
NOT_CONNECTED = frozenset({502, 504, 1300})
NO_DEFINITION = 200
HISTORICAL = 162
RATE_EXCEEDED = 100
# A new order that gets one of these was refused and never went live (201 rejected, 203 not
# allowed for the account, 103 duplicate id, 110 price off the tick, 200 unknown contract,
# 321 request invalid). For an order already acknowledged they only report a failed
# modification: the order stays as it was.
REJECTIONS = frozenset({103, 110, 200, 201, 203, 321})
# Information about an order that is (or was) working; never a cancel by itself. 202 is IB's
# "order cancelled" notice: the orderStatus that comes with it is what counts.
# "OrderId N that needs to be cancelled is not found": IB has no open order with that id (it
# was cancelled, expired or filled before; ib_insync#656 shows 10148 "state: Filled" first,
# then 10147 for the same id). Lean's IB brokerage finishes such an order on it
# (QuantConnect/Lean.Brokerages.InteractiveBrokers#248).
CANCEL_NOT_FOUND = 10147
ORDER_INFO = frozenset({105, 135, 161, 202, 329, 399, 404, 434, 492, 10147, 10148, 10311, 10349})
MARKET_DATA = frozenset({354, 10089, 10090, 10091, 10167, 10168, 10186, 10197})
INFO = frozenset({165, 366, 2100, 2101, 2102, 2109, 2137, 2150, 2168, 2169})


def classify(code: int, text: str = "") -> ErrorKind:
    """What an IB error message means, by its code (and, for 162, its text)."""
    if code in CONNECTIVITY_LOST:
        return "connectivity_lost"
    if code == RESTORED_DATA_LOST:
        return "restored_data_lost"
    if code == RESTORED_DATA_KEPT:
        return "restored_data_kept"
    if code in FARM_BROKEN:
        return "farm_broken"
    if code in FARM_OK:
        return "farm_ok"
    if code == CLIENT_ID_IN_USE:
        return "client_id_in_use"
    if code in NOT_CONNECTED:
        return "not_connected"
    if code == RATE_EXCEEDED or (code == HISTORICAL and is_pacing(code, text)):
        return "pacing"
    if code == HISTORICAL:
        lowered = text.lower()
        if "no data" in lowered or "returned no" in lowered:
            return "no_data"
        return "info" if "cancel" in lowered else "error"
    if code == NO_DEFINITION:
        return "no_definition"
    if code in REJECTIONS:
        return "order_rejected"
    if code in ORDER_INFO:
        return "order_info"
    if code in MARKET_DATA:
        return "market_data"
    if code in INFO or 2100 <= code < 2200:
        return "info"
    return "error"


def is_pacing(code: int, text: str) -> bool:
    """162 "Historical data request pacing violation" (or 100, too many messages)."""
    return code == RATE_EXCEEDED or (code == HISTORICAL and "pacing" in text.lower())


def rejects_new_order(code: int) -> bool:
    """True when this code, about an order IB has not acknowledged yet, means it was refused.

    Unknown codes are *not* rejections: taking a live order for a refused one could send it a
    second time (the OCO fallback re-sends the entry); the opposite mistake only leaves an order
    whose outcome is unknown until the next reconciliation."""
    return code in REJECTIONS


# Market-data errors after which no data comes for that request (10167 and 10089–10091 are
# warnings: delayed or partial data still flows).
MARKET_DATA_REFUSED = frozenset({101, 200, 354, 10168, 10186, 10197})


def refuses_market_data(code: int) -> bool:
    return code in MARKET_DATA_REFUSED


def is_warning(code: int) -> bool:
    """Codes that are plain information for the operator's log (not errors)."""
    return classify(code) in ("farm_ok", "info", "order_info", "market_data")
