"""The closed-trade record (spec §7): one line of `journal/trades.jsonl` per round trip."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from tradebot.core.validation import (
    MAX_ID,
    MAX_MONEY,
    MAX_MULTIPLIER,
    MAX_NAME,
    MAX_PRICE,
    MAX_QTY,
    MAX_R_MULTIPLE,
    MAX_YEAR,
    MIN_RISK,
    MIN_YEAR,
)

EXCHANGE_TZ = ZoneInfo("America/New_York")
_MICRO = Decimal("0.000001")

Right = Literal["C", "P"]
ExitReason = Literal["take_profit", "stop_loss", "flatten", "manual", "expired"]
PhaseName = Literal["experience", "proof", "trial", "scaling"]
TradeMode = Literal["paper", "live", "sim"]

TRADE_FIELDS: tuple[str, ...] = (
    "v",
    "trade_id",
    "symbol",
    "contract",
    "right",
    "strike",
    "expiry",
    "strategy",
    "qty",
    "multiplier",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "commission",
    "risk",
    "pnl",
    "r_multiple",
    "exit_reason",
    "phase",
    "mode",
    "session",
)


R_PLACES = Decimal("0.0001")


def session_of(moment: datetime) -> date:
    """The exchange session date (America/New_York) that a UTC moment belongs to."""
    return moment.astimezone(EXCHANGE_TZ).date()


def _as_text(value: object) -> object:
    # Dates and times in a record are ISO-8601 text; pydantic would also read a number as a
    # Unix timestamp, which no record of ours holds.
    if isinstance(value, (int, float, Decimal)):
        raise ValueError("must be an ISO-8601 text")
    return value


IsoDate = Annotated[date, BeforeValidator(_as_text)]
IsoTime = Annotated[AwareDatetime, BeforeValidator(_as_text)]
Money = Annotated[Decimal, Field(ge=-MAX_MONEY, le=MAX_MONEY)]
Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
# pnl must equal (exit − entry) × qty × multiplier − commission within this, per contract: room
# for an averaged fill price rounded to 6 places, never enough to turn a loss into a win.
PNL_TOLERANCE_PER_CONTRACT = Decimal("0.01")


class ClosedTrade(BaseModel):
    """A finished round trip. Money is Decimal, times are UTC, `pnl` is after commissions.

    Every field is checked when a record is read (types, bounds in `tradebot.core.validation`,
    and that pnl matches the prices), so an edited or damaged line is an error, never a number.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: Literal[1] = 1
    trade_id: Annotated[str, Field(min_length=1, max_length=MAX_ID)]
    symbol: Name
    contract: Name
    right: Right
    strike: Annotated[Decimal, Field(gt=0, le=MAX_PRICE)]
    expiry: IsoDate
    strategy: Name
    qty: Annotated[int, Field(gt=0, le=MAX_QTY), Strict()]
    multiplier: Annotated[int, Field(gt=0, le=MAX_MULTIPLIER), Strict()]
    entry_time: IsoTime
    exit_time: IsoTime
    entry_price: Price
    exit_price: Price
    commission: Annotated[Decimal, Field(ge=0, le=MAX_MONEY)] = Decimal(0)
    # Money at risk when the trade was opened: entry_price × qty × multiplier × stop-loss fraction.
    risk: Annotated[Decimal, Field(ge=MIN_RISK, le=MAX_MONEY)]
    pnl: Money
    r_multiple: Annotated[Decimal, Field(ge=-MAX_R_MULTIPLE, le=MAX_R_MULTIPLE)]
    exit_reason: ExitReason
    phase: PhaseName
    mode: TradeMode
    session: IsoDate

    @field_validator("entry_time", "exit_time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"must be in the years {MIN_YEAR}-{MAX_YEAR}")
        return value.astimezone(UTC)

    @field_validator("expiry", "session")
    @classmethod
    def _in_range(cls, value: date) -> date:
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"must be in the years {MIN_YEAR}-{MAX_YEAR}")
        return value

    @field_validator("pnl", "commission", "entry_price", "exit_price")
    @classmethod
    def _at_most_six_places(cls, value: Decimal) -> Decimal:
        # Metrics sum money as exact integer micro-dollars.
        if not value.is_finite():
            raise ValueError("must be a finite number")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -6 and value != value.quantize(_MICRO):
            raise ValueError("has more than 6 decimal places")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> ClosedTrade:
        if self.exit_time < self.entry_time:
            raise ValueError("exit_time is before entry_time")
        expected = session_of(self.exit_time)
        if self.session != expected:
            raise ValueError(
                f"session {self.session} is not the exchange date of exit_time ({expected})"
            )
        contracts = self.qty * self.multiplier
        gross = (self.exit_price - self.entry_price) * contracts
        if abs(gross - self.commission - self.pnl) > PNL_TOLERANCE_PER_CONTRACT * self.qty:
            raise ValueError(
                f"pnl {self.pnl} does not match (exit_price - entry_price) x qty x multiplier "
                f"- commission = {gross - self.commission}"
            )
        return self


def close_trade(
    *,
    trade_id: str,
    symbol: str,
    contract: str,
    right: Right,
    strike: Decimal,
    expiry: date,
    strategy: str,
    qty: int,
    multiplier: int,
    entry_time: datetime,
    exit_time: datetime,
    entry_price: Decimal,
    exit_price: Decimal,
    stop_loss_pct: Decimal,
    exit_reason: ExitReason,
    phase: PhaseName,
    mode: TradeMode,
    commission: Decimal = Decimal(0),
) -> ClosedTrade:
    """Build a closed trade, deriving risk, P&L (after commission), R multiple and session."""
    notional = entry_price * qty * multiplier
    risk = notional * stop_loss_pct / 100
    pnl = (exit_price - entry_price) * qty * multiplier - commission
    return ClosedTrade(
        trade_id=trade_id,
        symbol=symbol,
        contract=contract,
        right=right,
        strike=strike,
        expiry=expiry,
        strategy=strategy,
        qty=qty,
        multiplier=multiplier,
        entry_time=entry_time,
        exit_time=exit_time,
        entry_price=entry_price,
        exit_price=exit_price,
        commission=commission,
        risk=risk,
        pnl=pnl,
        # A ratio to four places: the quotient's 28 digits meant nothing to anyone reading it.
        r_multiple=(pnl / risk).quantize(R_PLACES) if risk else Decimal(0),
        exit_reason=exit_reason,
        phase=phase,
        mode=mode,
        session=session_of(exit_time),
    )
