"""The SSE decoder: any chunking and any line ending give the same frames; comments and
unknown fields are ignored; arbitrary bytes never make it raise; it agrees with the client
pycti uses on well-formed streams."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from filigran_sseclient.sseclient import Event  # type: ignore[import-untyped]  # no type information; used as a reference only
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.stream.sse import SseDecoder, SseFrame, encode_frame, feed

line_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=30
)
event_names = line_text.filter(lambda name: name not in ("", "message"))
data_bytes = st.lists(line_text, max_size=4).map(lambda lines: "\n".join(lines).encode())
frames = st.builds(
    SseFrame,
    event=event_names | st.just("message"),
    data=data_bytes,
    id=st.none() | line_text,
    retry=st.none() | st.integers(min_value=0, max_value=10**9),
)
endings = st.sampled_from([b"\n", b"\r\n", b"\r"])


def decode_all(chunks: Sequence[bytes]) -> list[SseFrame]:
    state = SseDecoder()
    result: list[SseFrame] = []
    for chunk in chunks:
        state, found = feed(state, chunk)
        result.extend(found)
    return result


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def render(frame_list: Sequence[SseFrame], ending: bytes) -> bytes:
    return b"".join(encode_frame(f) for f in frame_list).replace(b"\n", ending)


@given(st.lists(frames, max_size=8), endings, st.lists(st.integers(0, 2000), max_size=20))
def test_any_chunking_and_line_ending_gives_the_frames_back(
    frame_list: list[SseFrame], ending: bytes, cuts: list[int]
) -> None:
    wire = render(frame_list, ending)
    assert decode_all(split(wire, cuts)) == frame_list


@given(st.lists(frames, max_size=6))
def test_byte_at_a_time_equals_all_at_once(frame_list: list[SseFrame]) -> None:
    wire = render(frame_list, b"\r\n")
    assert decode_all([wire[i : i + 1] for i in range(len(wire))]) == decode_all([wire])


@given(st.lists(frames, min_size=1, max_size=6), st.lists(line_text, max_size=5), st.data())
def test_comments_and_unknown_fields_change_nothing(
    frame_list: list[SseFrame], noise: list[str], data: st.DataObject
) -> None:
    lines = render(frame_list, b"\n").split(b"\n")
    for text in noise:
        position = data.draw(st.integers(0, len(lines) - 1))
        extra = data.draw(st.sampled_from([b":", b"x-unknown: ", b"retry: not-a-number "]))
        lines.insert(position, extra + text.encode())
    assert decode_all([b"\n".join(lines)]) == frame_list


@given(st.lists(st.binary(max_size=200), max_size=10))
def test_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    for frame in decode_all(chunks):
        assert frame.event
        assert frame.retry is None or frame.retry >= 0
        assert frame.id is None or "\x00" not in frame.id


@given(st.lists(frames, max_size=6))
def test_agrees_with_filigran_sseclient(frame_list: list[SseFrame]) -> None:
    # filigran's client splits on blank lines and parses each block; compare on the fields
    # pycti reads (event, data as text, id) for frames with an id and data.
    # (filigran drops leading empty data lines: frames starting with one are left out.)
    usable = [f for f in frame_list if f.id and f.data and not f.data.startswith(b"\n")]
    wire = render(usable, b"\n").decode()
    theirs = [Event.parse(block) for block in wire.split("\n\n") if block]
    ours = decode_all([wire.encode()])
    assert [(e.event, e.data, e.id) for e in theirs] == [
        (f.event, f.data.decode(), f.id) for f in ours
    ]


def test_examples() -> None:
    wire = (
        b"\xef\xbb\xbfretry: 3000\n\n"
        b": a comment\n"
        b"event: connected\ndata: {}\n\n"
        b'id: 1-0\r\nevent: create\r\ndata: {"a":\r\ndata:  1}\r\n\r\n'
        b"id\ndata\n\n"
        b'id: 2-0\revent: heartbeat\rdata: "t"\r\r'
        b"id: bad\x00id\ndata: x\n\n"
        b"id: 3-0\ndata: unfinished"
    )
    assert decode_all(split(wire, [1, 2, 40, 41, 70, 71, 72])) == [
        SseFrame(retry=3000),
        SseFrame(event="connected", data=b"{}"),
        SseFrame(event="create", data=b'{"a":\n 1}', id="1-0"),
        SseFrame(data=b"", id=""),
        SseFrame(event="heartbeat", data=b'"t"', id="2-0"),
        SseFrame(data=b"x"),
    ]
    state, found = feed(SseDecoder(), b"data: abc")
    assert found == []
    assert state.frame_bytes == len(b"data: abc")
    assert feed(state, b"") == (state, [])
