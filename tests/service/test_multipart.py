import httpx
import pytest

from contract.errors import BadRequestError
from service.multipart import form_files, header_parameter


def encoded(files: list, data: dict | None = None) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.read(), request.headers["content-type"]


def test_the_file_parts_of_a_field_come_back_in_order_and_intact() -> None:
    payloads = [bytes(range(256)) * 3, b"\r\n--not-the-boundary\r\n\r\n", b""]
    files = [("images", (f"{i}.png", p, "image/png")) for i, p in enumerate(payloads)]
    body, content_type = encoded([*files, ("other", ("x.png", b"elsewhere", "image/png"))], {"images": "a text field"})
    assert form_files(body, content_type, "images") == payloads
    assert form_files(body, content_type, "missing") == []


def test_a_hand_written_body_with_quoting_preamble_and_epilogue() -> None:
    body = (
        b"preamble\r\n--b;x\r\n"
        b'content-disposition: form-data; filename="a;\\"b\\".png"; name="images"\r\n\r\nfirst\r\n'
        b"--b;x\r\nContent-Disposition: form-data; name=images; filename=c.png\r\n\r\nsecond\r\n"
        b"--b;x--\r\nepilogue --b;x"
    )
    assert form_files(body, 'multipart/form-data; boundary="b;x"', "images") == [b"first", b"second"]
    assert header_parameter('form-data; filename="a;\\"b\\".png"', "filename") == 'a;"b".png'


@pytest.mark.parametrize(
    "body, content_type",
    [
        (
            b"--b\r\ncontent-disposition: form-data; name=images; filename=a\r\n\r\ncut off",
            "multipart/form-data; boundary=b",
        ),
        (b"--b\r\nno end of headers", "multipart/form-data; boundary=b"),
        (b"--b--\r\n", "multipart/form-data"),
    ],
)
def test_truncated_or_boundless_bodies_are_bad_requests(body: bytes, content_type: str) -> None:
    with pytest.raises(BadRequestError):
        form_files(body, content_type, "images")
