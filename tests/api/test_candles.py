"""The ohlc channel's candles: trades fold into the current candle of each subscribed
interval, a new interval starts a new candle, and a subscription that starts after
everyone left begins from the read models' candle, not the stale one kept in memory."""

from __future__ import annotations

from typing import Any

from cambio.api.kraken.candles import Candle, Candles
from cambio.model.config import load_config
from cambio.model.events import Trade

PAIR = load_config().pair("XBTUSD")
S = 1_000_000_000


class Sink:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


def trade(price: int, qty: int) -> Trade:
    return Trade(
        trade_id=1, ledger_id=1, pair=PAIR.index, price=price, qty=qty, cost=price * qty,
        taker_side=0, maker_order=1, maker_account=1, taker_order=2, taker_account=2,
        maker_fee=0, taker_fee=0, maker_fee_base=False, taker_fee_base=False,
    )  # fmt: skip


def test_trades_fold_into_candles_and_a_new_minute_starts_a_new_one() -> None:
    candles, sink = Candles(), Sink()
    candles.subscribe(sink, PAIR.index, 1, None)
    candles.on_trades(PAIR, [(60 * S, trade(500, 2)), (61 * S, trade(510, 1))], 0)
    c = candles.current[(PAIR.index, 1)]
    assert c is not None
    assert (c.begin, c.open, c.high, c.low, c.close, c.volume, c.count) == (
        60, 500, 510, 500, 510, 3, 2,
    )  # fmt: skip
    candles.on_trades(PAIR, [(120 * S, trade(490, 1))], 0)
    c = candles.current[(PAIR.index, 1)]
    assert c is not None and (c.begin, c.open, c.count) == (120, 490, 1)
    assert len(sink.messages) == 2
    assert candles.current.get((PAIR.index, 5)) is None  # nobody asked for 5 minutes


def test_a_subscription_after_everyone_left_starts_from_the_read_models() -> None:
    candles, first, second = Candles(), Sink(), Sink()
    candles.subscribe(first, PAIR.index, 1, None)
    candles.on_trades(PAIR, [(60 * S, trade(500, 2))], 0)
    candles.unsubscribe(first, PAIR.index, 1)
    # trades while nobody listens are not followed; the read models have them
    stored = Candle(60, 500, 530, 500, 530, 7, 500 * 2 + 530 * 5, 2)
    candles.subscribe(second, PAIR.index, 1, stored)
    assert candles.current[(PAIR.index, 1)] is stored
    # while someone follows the trades, a newcomer's older snapshot does not reset it
    candles.on_trades(PAIR, [(62 * S, trade(540, 1))], 0)
    candles.subscribe(first, PAIR.index, 1, stored)
    c = candles.current[(PAIR.index, 1)]
    assert c is not None and (c.close, c.volume, c.count) == (540, 8, 3)
