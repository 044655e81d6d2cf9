"""A payment gateway stand-in whose answers a test scripts in advance."""

from __future__ import annotations


class GatewayTimeout(Exception):
    """The gateway did not answer in time: worth another try."""


class CardDeclined(Exception):
    """The bank said no: retrying will not change its mind."""


class FakeGateway:
    def __init__(self) -> None:
        self._script: list[str] = []
        self.charges: list[tuple[int, int, str]] = []

    def script(self, *answers: str) -> None:
        """The next answers, in order: "ok", "timeout" or "declined"; "ok" once the script runs out."""
        self._script = list(answers)

    def charge(self, order_id: int, amount_cents: int, *, via: str = "primary") -> str:
        answer = self._script.pop(0) if self._script else "ok"
        self.charges.append((order_id, amount_cents, via))
        if answer == "timeout":
            raise GatewayTimeout(f"{via} gateway timed out")
        if answer == "declined":
            raise CardDeclined(f"card declined for order {order_id}")
        return "captured"


GATEWAY = FakeGateway()
