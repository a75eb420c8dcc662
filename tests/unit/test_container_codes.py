"""ISO 6346 container codes: check digits (published codes, the letters a common shortcut gets wrong) and parsing."""
from __future__ import annotations

import pytest

from guidepost.container_codes import check_digit, find_codes, read_codes

# Published valid codes: ISO 6346's own example (CSQU3054383) and codes from carriers' documentation.
PUBLISHED = ["CSQU3054383", "MSCU6639870", "TASU1170000"]


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_codes_have_their_check_digit(code):
    assert check_digit(code[:10]) == int(code[10])
    (found,) = find_codes(f"The container reads {code}.")
    assert found.valid and found.code == code


def _by_hand(first_ten: str) -> int:
    # The standard's table written out: A=10, then skip 11, 22 and 33 (L=23, V=34, W=35).
    values = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27,
                                                    28, 29, 30, 31, 32, 34, 35, 36, 37, 38]))
    total = sum((values[ch] if ch.isalpha() else int(ch)) * 2**i for i, ch in enumerate(first_ten))
    return total % 11 % 10


@pytest.mark.parametrize("owner", ["LVWU", "WHLU", "VLWJ", "ALVZ"])
def test_letters_l_v_w_use_the_standard_values(owner):
    # The shortcut value = ord(c) - 55, plus one for each multiple of 11 passed, gives L=22, V=33, W=34: wrong.
    first_ten = owner + "123456"
    assert check_digit(first_ten) == _by_hand(first_ten)
    shortcut = sum(((ord(ch) - 55) + (ord(ch) - 55) // 11 if ch.isalpha() else int(ch)) * 2**i
                   for i, ch in enumerate(first_ten)) % 11 % 10
    assert shortcut != check_digit(first_ten), "these owners tell the shortcut from the standard"


def test_worked_example():
    # CSQU305438: C=13 S=30 Q=28 U=32 then the digits, weighted 1, 2, 4 ... 512: 6185; 6185 mod 11 = 3.
    assert sum(v * 2**i for i, v in enumerate([13, 30, 28, 32, 3, 0, 5, 4, 3, 8])) == 6185
    assert 6185 % 11 == 3 and check_digit("CSQU305438") == 3


@pytest.mark.parametrize("text", [
    "CSQU 305438 3", "CSQU-305438-3", "CSQU\n305438\n3", "CSQU 305438 [3]", "CSQU3054383", "csq: CSQU 305438 (3).",
])
def test_spaces_dashes_line_breaks_and_a_boxed_check_digit_are_tolerated(text):
    (found,) = find_codes(text)
    assert found.as_dict() == {"code": "CSQU3054383", "owner": "CSQ", "category": "U", "serial": "305438",
                               "check_digit": 3, "valid": True}


@pytest.mark.parametrize("text", [
    "CSQA 305438 3",       # the category letter must be U, J or Z
    "CSQU 30543 3",        # five-digit serial
    "CSQU 30543831",       # eight digits: not a serial and a check digit
    "XCSQU 305438 3",      # part of a longer word
    "menu 123456 7",       # lower case is not a painted code
    "Bus 147 to the harbour",
])
def test_things_that_are_not_container_codes(text):
    assert find_codes(text) == []


def test_several_codes_in_reading_order_without_repeats():
    codes = find_codes("Left: MSCU 663987 0. Right: CSQU 305438 4. Left again: MSCU6639870.")
    assert [(c.code, c.valid) for c in codes] == [("MSCU6639870", True), ("CSQU3054384", False)]
    assert codes[1].check_digit == 4 and codes[1].category == "U"


def test_a_wrong_check_digit_gets_a_notice():
    codes, notices = read_codes("CSQU 305438 4. MSCU 663987 0.", lambda code: f"{code} does not match.")
    assert notices == ["CSQU3054384 does not match."]
    assert [c["valid"] for c in codes] == [False, True]
    assert read_codes("EXIT 4", lambda code: "never") == ([], [])


def test_only_ascii_digits_make_a_code():
    assert find_codes("CSQU \u0663\u0660\u0665\u0664\u0663\u0668 \u0663") == []  # Arabic-Indic digits
