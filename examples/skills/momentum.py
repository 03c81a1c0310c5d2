"""A workflow skill: `main(input) -> output`, JSON in and out, run in the sandbox by a `script`
node. Scores a list of closes by their momentum over `lookback` bars."""


def main(input):
    closes = [float(c) for c in input["closes"]]
    lookback = int(input.get("lookback", 5))
    if len(closes) <= lookback:
        return {"signal": "none", "reason": "not enough closes"}
    change = closes[-1] / closes[-1 - lookback] - 1.0
    signal = "buy" if change > 0.02 else "sell" if change < -0.02 else "hold"
    return {"signal": signal, "change": round(change, 6)}
