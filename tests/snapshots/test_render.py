"""Drawing rules (docs/protocol.md, "Drawing shapes") and the vault, on their own."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag

from videoassist import keyfiles
from videoassist.config import Secret, Settings
from videoassist.errors import BadRequest, ConfigError, Unavailable
from videoassist.snapshots import render
from videoassist.snapshots.shapes import check_shapes
from videoassist.snapshots.vault import Vault, kek_id, seal, unseal
from videoassist.storage import Store


def _canvas(width: int = 400, height: int = 200) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


def _painted(image: np.ndarray) -> np.ndarray:
    return image.max(axis=2) > 128


def test_a_circle_is_round_in_pixels_whatever_the_aspect() -> None:
    shape = {"id": "c", "kind": "circle", "points": [[0.5, 0.5], [0.6, 0.5]],
             "color": "#ffffff", "width": 0.005}
    ys, xs = np.nonzero(_painted(render.draw(_canvas(), check_shapes([shape]))))
    radius = 0.1 * 400  # 40 pixels, along x and along y alike
    assert abs((xs.max() - xs.min()) / 2 - radius) <= 2
    assert abs((ys.max() - ys.min()) / 2 - radius) <= 2


def test_an_arrow_ends_at_its_head_with_a_wider_triangle() -> None:
    shape = {"id": "a", "kind": "arrow", "points": [[0.1, 0.5], [0.9, 0.5]],
             "color": "#ffffff", "width": 0.01}
    painted = _painted(render.draw(_canvas(), check_shapes([shape])))
    _, xs = np.nonzero(painted)
    assert abs(xs.max() - 360) <= 1 and abs(xs.min() - 40) <= 3
    shaft = painted[:, 100].sum()
    head = painted[:, 360 - 8].sum()  # half way along the 16-pixel head
    assert shaft in (4, 5) and head > 2 * shaft


def test_a_pen_of_one_point_is_a_dot_and_strokes_scale_with_the_width() -> None:
    dot = {"id": "p", "kind": "pen", "points": [[0.5, 0.5]], "color": "#ffffff", "width": 0.05}
    painted = _painted(render.draw(_canvas(), check_shapes([dot])))
    assert 0.7 * np.pi * 10**2 <= painted.sum() <= 1.3 * np.pi * 10**2  # 20 px across
    line = {"id": "l", "kind": "pen", "points": [[0.1, 0.2], [0.9, 0.2]], "color": "#ffffff",
            "width": 0.02}
    small = _painted(render.draw(_canvas(), check_shapes([line])))[:, 200].sum()
    large = _painted(render.draw(_canvas(800, 400), check_shapes([line])))[:, 400].sum()
    assert small == pytest.approx(8, abs=1) and large == pytest.approx(16, abs=1)


def test_text_gets_an_outline_that_contrasts_with_its_colour() -> None:
    assert render.outline_color("#ffcc00") == (0, 0, 0)
    assert render.outline_color("#0000aa") == (255, 255, 255)
    label = {"id": "t", "kind": "text", "points": [[0.1, 0.1]], "color": "#ffff00",
             "width": 0.01, "text": "Valve"}
    grey = np.full((200, 400, 3), 128, np.uint8)
    out = render.draw(grey, check_shapes([label]))
    black = (out.max(axis=2) < 40).sum()
    yellow = ((out[:, :, 2] > 200) & (out[:, :, 1] > 200) & (out[:, :, 0] < 60)).sum()
    assert black > 50 and yellow > 50
    ys, _ = np.nonzero(out.max(axis=2) != 128)
    assert ys.min() >= 20 - 4  # the label hangs below its point, not above


def test_drawing_leaves_the_captured_frame_untouched() -> None:
    frame = _canvas()
    shape = {"id": "a", "kind": "arrow", "points": [[0, 0], [1, 1]], "color": "#ffffff",
             "width": 0.1}
    render.draw(frame, check_shapes([shape]))
    assert not frame.any()


def test_shape_lists_are_checked() -> None:
    ok = {"id": "a", "kind": "pen", "points": [[0, 0]], "color": "#FFFFFF", "width": 0.01}
    assert check_shapes([ok])[0]["color"] == "#ffffff"
    for bad in ([ok, ok], [{**ok, "width": 0}], [{**ok, "kind": "laser"}], "pen",
                [{**ok, "points": [[0, float("nan")]]}]):
        with pytest.raises(BadRequest):
            check_shapes(bad)


def test_sealed_blobs_open_only_with_their_key_and_context() -> None:
    key, other = b"k" * 32, b"o" * 32
    blob = seal(key, b"picture", b"job 1")
    assert unseal(key, blob, b"job 1") == b"picture"
    assert blob.count(b"picture") == 0
    for k, context in ((other, b"job 1"), (key, b"job 2")):
        with pytest.raises(InvalidTag):
            unseal(k, blob, context)
    assert seal(key, b"picture", b"job 1") != blob  # a fresh nonce each time


async def test_a_server_with_another_kek_refuses_clearly(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        job = await store.jobs.create("Boiler", None, None)
        first = Vault(b"a" * 32, store.snapshots)
        key = await first.key_for_new(job.id)
        assert await Vault(b"a" * 32, store.snapshots).key(job.id) == key
        with pytest.raises(Unavailable):
            await Vault(b"b" * 32, store.snapshots).key(job.id)
        assert kek_id(b"a" * 32) != kek_id(b"b" * 32)
    finally:
        await store.close()


def test_the_kek_comes_from_the_environment_or_a_private_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    generated = keyfiles.snapshot_key(settings)
    path = tmp_path / "data" / keyfiles.SNAPSHOT_KEY_FILE
    assert len(generated) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert keyfiles.snapshot_key(settings) == generated  # read back, not made again
    given = base64.b64encode(b"z" * 32).decode()
    assert keyfiles.snapshot_key(settings.replace(snapshot_key=Secret(given))) == b"z" * 32
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ConfigError):
            keyfiles.snapshot_key(settings.replace(snapshot_key=Secret(bad)))


def test_labels_beyond_ascii_are_drawn_as_themselves() -> None:
    def drawn(text: str) -> np.ndarray:
        label = {"id": "t", "kind": "text", "points": [[0.05, 0.3]], "color": "#ffffff",
                 "width": 0.01, "text": text}
        return render.draw(_canvas(), check_shapes([label]))

    assert not np.array_equal(drawn("Ventil öffnen"), drawn("Ventil ?ffnen"))
    assert not np.array_equal(drawn("阀门"), drawn("??"))


def test_drawing_work_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Too much ink is refused before anything is drawn...
    scribble = {"id": "s", "kind": "pen", "color": "#ffffff", "width": 0.1,
                "points": [[i % 2, (i // 2) % 2] for i in range(1000)]}
    with pytest.raises(BadRequest, match="Too much drawing"):
        check_shapes([scribble])
    # ... and a label's work is bounded by the picture, however long and large it is:
    # the outline's distance transform runs on at most the picture plus its reach.
    sizes: list[tuple[int, int]] = []
    real = render.cv2.distanceTransform

    def recorded(src: np.ndarray, *args: object) -> np.ndarray:
        sizes.append(src.shape)
        return real(src, *args)

    monkeypatch.setattr(render.cv2, "distanceTransform", recorded)
    label = {"id": "t", "kind": "text", "points": [[0.0, 0.0]], "color": "#ffffff",
             "width": 0.1, "text": "W" * 200}
    out = render.draw(_canvas(1280, 720), check_shapes([label]))
    assert out.any()
    _, _, outline = render.text_metrics(check_shapes([label])[0], 1280, 720)
    assert sizes and all(h <= 720 + 2 * (outline + 1) and w <= 1280 + 2 * (outline + 1)
                         for h, w in sizes), sizes
