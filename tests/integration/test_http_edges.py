"""HTTP edges an abuse test found: API key spellings, non-UTF-8 file names, chunked bodies over the limit."""
from __future__ import annotations

import io
import json

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from tests.helpers import encode


def post_image(client, jpeg, headers=None):
    return client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}, content_type="multipart/form-data",
                       headers=headers or {})


@pytest.fixture(scope="module")
def keyed(make_app):
    return make_app(api_keys="s3cret,other").test_client()


@pytest.mark.parametrize("headers", [
    {"Authorization": "bearer other"},                            # RFC 9110: the scheme is case-insensitive
    {"Authorization": "BEARER   s3cret "},
    {"X-API-Key": "wrong", "Authorization": "Bearer s3cret"},    # a wrong X-API-Key does not hide a right Bearer
    {"X-API-Key": "other", "Authorization": "Bearer wrong"},     # nor the other way round
])
def test_any_right_key_is_accepted_however_it_is_spelled(keyed, jpeg, headers):
    assert post_image(keyed, jpeg, headers).status_code == 200


@pytest.mark.parametrize("headers", [
    {"Authorization": "Basic s3cret"},       # another scheme is not a key
    {"Authorization": "s3cret"},             # nor a bare value
    {"Authorization": "Bearer"},
    {"X-API-Key": "wrong", "Authorization": "Bearer wrong"},
    {"X-API-Key": "s3cre"},                  # a prefix of a key
])
def test_wrong_or_malformed_keys_are_401(keyed, jpeg, headers):
    response = post_image(keyed, jpeg, headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def multipart(filename: bytes, data: bytes, *fields: tuple[str, str]) -> tuple[bytes, str]:
    """A multipart body written byte for byte, so a part header can hold bytes that are not UTF-8."""
    parts = [b'--B\r\nContent-Disposition: form-data; name="image"; filename="' + filename
             + b'"\r\nContent-Type: image/jpeg\r\n\r\n' + data + b"\r\n"]
    parts += [f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode() for name, value in fields]
    return b"".join(parts) + b"--B--\r\n", "multipart/form-data; boundary=B"


@pytest.mark.parametrize("filename", ["café.jpg".encode("latin-1"), "café.jpg".encode(), "사진.jpg".encode("euc-kr")])
def test_an_image_is_accepted_whatever_its_file_name_is_encoded_in(client, jpeg, filename):
    body, content_type = multipart(filename, jpeg, ("objects", "car"))
    response = client.post("/process", data=body, content_type=content_type)
    assert response.status_code == 200, response.json
    assert response.json["hazards"] == ["car"], "the other fields of the form survive too"


def test_a_broken_multipart_body_is_still_a_clear_400(client):
    response = client.post("/process", data=b"--B\r\nnot a part", content_type="multipart/form-data; boundary=B")
    assert response.status_code == 400 and response.json["error"]["code"] == "missing_image"


def post_chunked(app, body: bytes, content_type: str) -> Response:
    """POST /process as gunicorn hands a chunked body over: no Content-Length, a stream the server ends itself."""
    environ = EnvironBuilder(path="/process", method="POST", input_stream=io.BytesIO(body),
                             content_type=content_type).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    return Response.from_app(app, environ)


def test_a_chunked_body_over_the_limit_is_told_the_image_size_limit(make_app, photo):
    app = make_app(max_image_mb=0.05)
    big = encode(photo.resize((1500, 1500)), "PNG")
    body, content_type = multipart(b"big.png", big)
    response = post_chunked(app, body, content_type)
    error = json.loads(response.get_data())["error"]
    assert response.status_code == 413 and error["code"] == "payload_too_large"
    assert "GUIDEPOST_MAX_IMAGE_MB" in error["message"] and "form field" not in error["message"], error


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_other_chunked_bodies_over_the_limit_are_413_not_a_truncated_parse(make_app, content_type):
    app = make_app(max_image_mb=0.05)
    body = b"{" + b" " * 200_000 + b"}" if content_type == "application/json" else b"image=" + b"x" * 200_000
    response = post_chunked(app, body, content_type)
    assert response.status_code == 413 and "GUIDEPOST_MAX_IMAGE_MB" in json.loads(response.get_data())["error"]["message"]
