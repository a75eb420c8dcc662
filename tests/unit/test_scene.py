"""Decoding a request without HTTP: the fields model, the limits, and the one mapping of domain errors to statuses."""
from __future__ import annotations

import inspect

import pytest

from guidepost import errors
from guidepost.config import PROJECT_ROOT
from guidepost.errors import GuidepostError, InvalidField, TooLarge
from guidepost.http.errors import http_status
from guidepost.prompts import PromptBook
from guidepost.scene import Limits, decode_fields
from tests.helpers import encode


@pytest.fixture(scope="module")
def limits():
    return Limits(max_image_mb=1, max_image_pixels=10_000_000, image_max_side=256, max_text_chars=20, max_objects=3,
                  max_images=2, prompts=PromptBook.load(PROJECT_ROOT / "prompts"))


def test_raw_fields_become_a_scene_request(limits, photo):
    scene = decode_fields({"images": [encode(photo)], "text": "  where? ", "objects": "car, dog", "lang": "ko"},
                          limits, request_id="r1")
    assert scene.text == "where?" and scene.objects == ["car", "dog"] and scene.lang == "ko"
    assert scene.task == "describe" and scene.request_id == "r1" and max(scene.scene.size) == 256
    assert scene.decode_ms >= 0


@pytest.mark.parametrize("fields, field", [
    ({"text": "x" * 21}, "text"), ({"text": 5}, "text"), ({"objects": "a,b,c,d"}, "objects"),
    ({"objects": [1]}, "objects"), ({"lang": "fr"}, "lang"), ({"lang": 3}, "lang"), ({"task": "poem"}, "task"),
])
def test_bad_fields_name_the_field_before_any_decoding(limits, fields, field):
    with pytest.raises(InvalidField) as error:
        decode_fields({"images": [b"not even an image"], **fields}, limits)
    assert error.value.field == field and f"'{field}'" in error.value.message


def test_image_limits(limits, photo):
    with pytest.raises(InvalidField, match="at most 2 images"):
        decode_fields({"images": [encode(photo)] * 3}, limits)
    with pytest.raises(TooLarge, match="larger than 1 MB"):
        decode_fields({"images": [b"\0" * (2**20 + 1)]}, limits)


def test_every_domain_error_has_an_http_status():
    kinds = [kind for _, kind in inspect.getmembers(errors, inspect.isclass)
             if issubclass(kind, GuidepostError) and kind is not GuidepostError]
    assert kinds and all(400 <= http_status(kind.__new__(kind)) < 600 for kind in kinds)
