"""Liquidity guard, position size and bracket prices (spec §5). Pure, Decimal money.

* Liquidity: bid > 0, ask > 0, spread ``(ask − bid) / mid ≤ max_spread_pct %``, session volume
  ``≥ min_option_volume``. Every failing rule is named with its numbers.
* Size: ``contracts = max(1, floor(equity × max_risk_pct % / (premium × multiplier ×
  stop_loss_pct %)))``, then capped so ``premium × multiplier × contracts ≤ position cap``;
  0 means no trade, with the reason. (The seed bot forgot the ×100 multiplier; this does not.)
  Equity ≤ 0 or a non-positive premium also mean 0: the max(1, …) floor never buys on nothing.
* Bracket: the entry is the premium rounded to the nearest tick (ties up); take-profit
  ``entry × (1 + tp %)`` to the nearest tick (at least one tick above the entry); stop
  ``entry × (1 − sl %)`` rounded UP to the tick (at least one tick), so the loss at the stop is
  never more than the planned stop_loss_pct of what was paid. When no stop fits strictly between
  0 and the entry (a one-tick premium, or a stop tighter than one tick), `bracket_prices` raises
  ValueError: no trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradebot.core.option_selection import OptionQuote
from tradebot.core.settings import RiskSettings
from tradebot.core.ticks import TickLadder, as_ladder

_HUNDRED = Decimal(100)
_MANY = Decimal(10) ** 9  # more contracts than any cap allows


def _usd(value: Decimal) -> str:
    return f"${value:,.2f}"


def _pct(value: Decimal) -> str:
    return f"{value.normalize():f} %"


@dataclass(frozen=True)
class LiquidityCheck:
    """Whether a quote is liquid enough to trade; `spread_pct` is None when it cannot be priced."""

    ok: bool
    reason: str
    spread_pct: Decimal | None


def liquidity_check(quote: OptionQuote, cfg: RiskSettings) -> LiquidityCheck:
    """Ok, or a refusal listing every failing rule with its numbers (spread in % of mid)."""
    name = quote.label
    problems: list[str] = []
    bid_ok = quote.bid.is_finite() and quote.bid > 0
    ask_ok = quote.ask.is_finite() and quote.ask > 0
    if not bid_ok:
        problems.append(f"no bid ({quote.bid})")
    if not ask_ok:
        problems.append(f"no ask ({quote.ask})")
    spread_pct: Decimal | None = None
    if bid_ok and ask_ok:
        if quote.ask < quote.bid:
            problems.append(f"crossed quote: ask {quote.ask} < bid {quote.bid}")
        else:
            mid = (quote.bid + quote.ask) / 2
            spread_pct = (quote.ask - quote.bid) / mid * _HUNDRED
            shown = spread_pct.quantize(Decimal("0.1"))
            if spread_pct > cfg.max_spread_pct:
                problems.append(
                    f"spread {quote.bid}/{quote.ask} is {shown} % of mid {mid}, over the "
                    f"{_pct(cfg.max_spread_pct)} limit"
                )
    if quote.volume < cfg.min_option_volume:
        problems.append(
            f"volume {quote.volume:,} is below the minimum {cfg.min_option_volume:,} contracts"
        )
    if problems or spread_pct is None:
        return LiquidityCheck(False, f"{name} refused: {'; '.join(problems)}", spread_pct)
    return LiquidityCheck(
        True,
        f"{name} liquid: bid {quote.bid} / ask {quote.ask}, spread "
        f"{spread_pct.quantize(Decimal('0.1'))} % ≤ {_pct(cfg.max_spread_pct)}, volume "
        f"{quote.volume:,} ≥ {cfg.min_option_volume:,}",
        spread_pct,
    )


@dataclass(frozen=True)
class PositionSize:
    """How many contracts, and why: by risk, by the cap, and the final number (0 = no trade)."""

    contracts: int
    risk_based_contracts: int
    cap_based_contracts: int
    contract_cost: Decimal  # premium × multiplier ($, one contract)
    cost: Decimal  # contract_cost × contracts ($)
    risk_budget: Decimal  # equity × max_risk_pct % ($)
    risk_per_contract: Decimal  # contract_cost × stop_loss_pct % ($)
    reason: str


def position_size(
    equity: Decimal,
    premium: Decimal,
    multiplier: int,
    risk: RiskSettings,
    position_cap_usd: Decimal,
) -> PositionSize:
    """Contracts to buy: risk-based count (at least 1), capped by the position cap; 0 = no trade."""
    zero = Decimal(0)
    for label, value in (("equity", equity), ("premium", premium), ("cap", position_cap_usd)):
        if not value.is_finite():
            return _no_trade(f"{label} is not a number ({value}): no trade")
    if multiplier <= 0:
        return _no_trade(f"contract multiplier {multiplier} is not positive: no trade")
    if premium <= 0:
        return _no_trade(f"premium {premium} is not positive: no trade")
    contract_cost = premium * multiplier
    risk_budget = equity * risk.max_risk_pct / _HUNDRED
    risk_per_contract = contract_cost * risk.stop_loss_pct / _HUNDRED
    if equity <= 0:
        return _no_trade(
            f"equity {_usd(equity)} is not positive: no trade",
            contract_cost=contract_cost,
            risk_per_contract=risk_per_contract,
        )
    # Decimal `//` is the exact integer part (not a rounded quotient), and both sides are > 0.
    # Absurdly small premiums would overflow it; the cap decides those anyway.
    if risk_budget / risk_per_contract >= _MANY:
        by_risk = int(_MANY)
    else:
        by_risk = max(1, int(risk_budget // risk_per_contract))
    if position_cap_usd <= 0:
        by_cap = 0
    elif position_cap_usd / contract_cost >= _MANY:
        by_cap = int(_MANY)
    else:
        by_cap = int(position_cap_usd // contract_cost)
    contracts = min(by_risk, by_cap)
    risk_text = (
        f"risk {_usd(risk_budget)} ({_pct(risk.max_risk_pct)} of {_usd(equity)}) / "
        f"{_usd(risk_per_contract)} per contract ({premium} × {multiplier} × "
        f"{_pct(risk.stop_loss_pct)} stop) → {by_risk}"
    )
    if contracts == 0:
        reason = (
            f"one contract costs {_usd(contract_cost)} ({premium} × {multiplier}), more than the "
            f"{_usd(position_cap_usd)} position cap: no trade"
        )
    elif by_cap < by_risk:
        reason = (
            f"{contracts} contract(s): {risk_text}, capped at {by_cap} by the "
            f"{_usd(position_cap_usd)} position cap ({_usd(contract_cost)} each)"
        )
    else:
        reason = f"{contracts} contract(s): {risk_text}; cost {_usd(contract_cost * contracts)}"
    return PositionSize(
        contracts=contracts,
        risk_based_contracts=by_risk,
        cap_based_contracts=by_cap,
        contract_cost=contract_cost,
        cost=contract_cost * contracts if contracts else zero,
        risk_budget=risk_budget,
        risk_per_contract=risk_per_contract,
        reason=reason,
    )


def _no_trade(
    reason: str,
    *,
    contract_cost: Decimal = Decimal(0),
    risk_per_contract: Decimal = Decimal(0),
) -> PositionSize:
    return PositionSize(
        contracts=0,
        risk_based_contracts=0,
        cap_based_contracts=0,
        contract_cost=contract_cost,
        cost=Decimal(0),
        risk_budget=Decimal(0),
        risk_per_contract=risk_per_contract,
        reason=reason,
    )


@dataclass(frozen=True)
class BracketPrices:
    """Entry, take-profit and stop prices per share, each on the contract's tick."""

    entry: Decimal
    take_profit: Decimal
    stop_loss: Decimal


def bracket_prices(
    premium: Decimal,
    tick: Decimal | TickLadder,
    take_profit_pct: Decimal,
    stop_loss_pct: Decimal,
) -> BracketPrices:
    """Entry ≈ premium, TP ≈ entry × (1 + tp %), stop ≥ entry × (1 − sl %), per share, each on
    the contract's price ladder (`tick`: a flat increment or IB's market-rule ladder)."""
    if not premium.is_finite() or premium <= 0:
        raise ValueError(f"premium must be positive, got {premium}")
    if not take_profit_pct.is_finite() or take_profit_pct <= 0:
        raise ValueError(f"take_profit_pct must be positive, got {take_profit_pct}")
    if not stop_loss_pct.is_finite() or not 0 < stop_loss_pct <= _HUNDRED:
        raise ValueError(f"stop_loss_pct must be in (0, 100], got {stop_loss_pct}")
    grid = as_ladder(tick)
    entry = grid.round(premium)
    if entry <= 0:
        raise ValueError(f"premium {premium} rounds to {entry} on {grid.describe()}: no trade")
    # Targets are computed from the entry, the price actually paid.
    take_profit = max(grid.round(entry * (1 + take_profit_pct / _HUNDRED)), grid.next_above(entry))
    # Rounded up: the loss at the stop is never more than stop_loss_pct of the entry.
    stop = max(grid.up(entry * (1 - stop_loss_pct / _HUNDRED)), grid.steps[0][1])
    if stop >= entry:
        raise ValueError(
            f"no stop fits strictly between 0 and the entry {entry} within "
            f"{_pct(stop_loss_pct)} on tick {grid.describe()}: no trade"
        )
    return BracketPrices(entry=entry, take_profit=take_profit, stop_loss=stop)


def cash_shortfall(
    contracts: int, entry: Decimal, multiplier: int, cash: Decimal | None
) -> str | None:
    """Why a buy of `contracts` at `entry` a share cannot be paid from the account's `cash`, or
    None when it can (or the cash is not known). An option is paid in full when bought; an order
    the broker is sure to refuse for want of funds is not sent (IB answers error 201 each time,
    and the bot would send it again at every signal)."""
    if cash is None:
        return None
    cost = entry * multiplier * contracts
    if cost <= cash:
        return None
    return (
        f"{contracts} × {entry} × {multiplier} costs {_usd(cost)} before commission; "
        f"the account has {_usd(cash)} in cash"
    )
