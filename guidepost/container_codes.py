"""ISO 6346 shipping-container codes in text a VLM read: found, split into their parts, check digit verified."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from stdnum import iso6346

# Owner code (3 letters), category (U freight, J detachable equipment, Z trailer or chassis), 6-digit serial,
# check digit. Painted codes put spaces, dashes or line breaks between the groups and often box the check digit.
_GAP = r"[\s\-\u2010-\u2015]*"
# Capitals only, as painted: lower-case words ending in u, j or z before a number are not codes.
_CODE = re.compile(rf"(?<![A-Za-z0-9])([A-Z]{{3}})([UJZ]){_GAP}([0-9]{{6}}){_GAP}[\[(|]?\s*([0-9])\s*[\])|]?(?![0-9])")


@dataclass(frozen=True)
class ContainerCode:
    """One code as read, with its parts and whether its check digit matches the other ten characters."""

    code: str
    owner: str
    category: str
    serial: str
    check_digit: int
    valid: bool

    def as_dict(self) -> dict:
        """The JSON shape of one entry of a /process answer's `codes`."""
        return asdict(self)


def check_digit(first_ten: str) -> int:
    """The ISO 6346 check digit of owner, category and serial (A=10 ... Z=38 skipping 11, 22, 33; weights 2**i)."""
    return int(iso6346.calc_check_digit(first_ten))


def find_codes(text: str) -> list[ContainerCode]:
    """Every distinct container code in the text, in reading order."""
    codes: dict[str, ContainerCode] = {}
    for owner, category, serial, digit in _CODE.findall(text):
        code = f"{owner}{category}{serial}{digit}"
        codes.setdefault(code, ContainerCode(code=code, owner=owner, category=category, serial=serial,
                                             check_digit=int(digit),
                                             valid=check_digit(code[:10]) == int(digit)))
    return list(codes.values())


def read_codes(text: str, mismatch_notice) -> tuple[list[dict], list[str]]:
    """The codes in an answer, and a spoken notice for each whose check digit does not match.

    mismatch_notice(code) renders that notice in the request's language (the read task's prompt file).
    """
    codes = find_codes(text)
    return [code.as_dict() for code in codes], [mismatch_notice(code.code) for code in codes if not code.valid]
