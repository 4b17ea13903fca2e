"""Per-connection mapping options: the choices a user may need to change in a mapping.

A connection's options are flat, ``<source>.<option>`` → value (``stripe.company_key`` →
``metadata.account_id``). Each source declares the options it reads, with a default and
the values it accepts; ``for_source`` checks what was given and fills in the defaults, so
a mapping always sees a complete, valid set. Options named ``<source>.custom.…`` are a
connection's custom field rules, checked by ``connectors/custom_fields/rules.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class OptionError(ValueError):
    """An option that does not exist or a value it does not accept; the message says which."""


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    default: str
    pattern: str  # a full match of this regex is a valid value
    help: str

    def check(self, source: str, value: str) -> str:
        if not re.fullmatch(self.pattern, value):
            raise OptionError(f"{source}.{self.name}={value!r} is not valid: {self.help}")
        return value

    def env_name(self, source: str) -> str:
        """The variable that sets it for the ``default`` connection: STRIPE_COMPANY_KEY."""
        return f"{source}_{self.name}".upper()


def for_source(source: str, declared: Iterable[Option], given: Mapping[str, str]) -> dict[str, str]:
    """``source``'s options from a connection's flat options, checked, defaults filled."""
    known = {option.name: option for option in declared}
    values = {name: option.default for name, option in known.items()}
    prefix = f"{source}."
    for key, value in given.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name.startswith("custom."):  # a custom field rule (connectors/custom_fields/)
            continue
        option = known.get(name)
        if option is None:
            choices = ", ".join(sorted(known)) or "none"
            raise OptionError(f"{source} has no option {name!r} (it has: {choices})")
        values[name] = option.check(source, value)
    return values
