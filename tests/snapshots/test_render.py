"""Drawing rules (docs/protocol.md, "Drawing shapes") and the vault, on their own."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from cryptography.exceptions import InvalidTag
from PIL import ImageFont

from tests.support.labels import SCRIPTS
from videoassist import keyfiles
from videoassist.app import create_app
from videoassist.auth.sealing import seal, unseal
from videoassist.config import Secret, Settings
from videoassist.errors import BadRequest, ConfigError, Unavailable
from videoassist.snapshots import labels, render
from videoassist.snapshots.fonts import LabelFonts
from videoassist.snapshots.shapes import MAX_INK, MAX_SHAPES, check_shapes, ink
from videoassist.snapshots.vault import Vault, kek_id
from videoassist.storage import Store


def _canvas(width: int = 400, height: int = 200) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


def _painted(image: np.ndarray) -> np.ndarray:
    return image.max(axis=2) > 128


def test_a_circle_is_round_in_pixels_whatever_the_aspect() -> None:
    shape = {"id": "c", "kind": "circle", "points": [[0.5, 0.5], [0.6, 0.5]],
             "color": "#ffffff", "width": 0.005}
    ys, xs = np.nonzero(_painted(render.draw(_canvas(), check_shapes([shape]), None)))
    radius = 0.1 * 400  # 40 pixels, along x and along y alike
    assert abs((xs.max() - xs.min()) / 2 - radius) <= 2
    assert abs((ys.max() - ys.min()) / 2 - radius) <= 2


def test_an_arrow_ends_at_its_head_with_a_wider_triangle() -> None:
    shape = {"id": "a", "kind": "arrow", "points": [[0.1, 0.5], [0.9, 0.5]],
             "color": "#ffffff", "width": 0.01}
    painted = _painted(render.draw(_canvas(), check_shapes([shape]), None))
    _, xs = np.nonzero(painted)
    assert abs(xs.max() - 360) <= 1 and abs(xs.min() - 40) <= 3
    shaft = painted[:, 100].sum()
    head = painted[:, 360 - 8].sum()  # half way along the 16-pixel head
    assert shaft in (4, 5) and head > 2 * shaft


def test_a_pen_of_one_point_is_a_dot_and_strokes_scale_with_the_width() -> None:
    dot = {"id": "p", "kind": "pen", "points": [[0.5, 0.5]], "color": "#ffffff", "width": 0.05}
    painted = _painted(render.draw(_canvas(), check_shapes([dot]), None))
    assert 0.7 * np.pi * 10**2 <= painted.sum() <= 1.3 * np.pi * 10**2  # 20 px across
    line = {"id": "l", "kind": "pen", "points": [[0.1, 0.2], [0.9, 0.2]], "color": "#ffffff",
            "width": 0.02}
    small = _painted(render.draw(_canvas(), check_shapes([line]), None))[:, 200].sum()
    large = _painted(render.draw(_canvas(800, 400), check_shapes([line]), None))[:, 400].sum()
    assert small == pytest.approx(8, abs=1) and large == pytest.approx(16, abs=1)


def test_text_gets_an_outline_that_contrasts_with_its_colour(label_fonts: LabelFonts) -> None:
    assert render.outline_color("#ffcc00") == (0, 0, 0)
    assert render.outline_color("#0000aa") == (255, 255, 255)
    label = {"id": "t", "kind": "text", "points": [[0.1, 0.1]], "color": "#ffff00",
             "width": 0.01, "text": "VALVE"}
    grey = np.full((200, 400, 3), 128, np.uint8)
    out = render.draw(grey, check_shapes([label]), label_fonts)
    black = (out.max(axis=2) < 40).sum()
    yellow = (out[:, :, 2] > 200) & (out[:, :, 1] > 200) & (out[:, :, 0] < 60)
    assert black > 50 and yellow.sum() > 50
    # The capitals hang from the point (y = 20), their outline around them.
    letters, outline = render.text_metrics(label, 400, 200)
    rows = np.nonzero(yellow.any(axis=1))[0]
    assert abs(rows.min() - 20) <= 1 and abs(rows.max() + 1 - (20 + letters)) <= 1, rows
    ys, _ = np.nonzero(out.max(axis=2) != 128)
    assert ys.min() >= 20 - outline - 1


def test_drawing_leaves_the_captured_frame_untouched() -> None:
    frame = _canvas()
    shape = {"id": "a", "kind": "arrow", "points": [[0, 0], [1, 1]], "color": "#ffffff",
             "width": 0.1}
    render.draw(frame, check_shapes([shape]), None)
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


# -- labels in every script ---------------------------------------------------------

# A character no face has: drawn as the main face's missing-glyph box (tofu).
MISSING = "\U0010fffd"


def _label(text: str, **changes: Any) -> dict[str, Any]:
    return {"id": "t", "kind": "text", "points": [[0.05, 0.3]], "color": "#ffffff",
            "width": 0.01, "text": text, **changes}


def _drawn(fonts: LabelFonts, text: str, size: tuple[int, int] = (640, 200)) -> np.ndarray:
    return render.draw(_canvas(*size), check_shapes([_label(text)]), fonts)


def _columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The columns where two drawings differ."""
    return np.nonzero((a != b).any(axis=(0, 2)))[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_label_is_drawn_as_itself(label_fonts: LabelFonts, script: str) -> None:
    text = SCRIPTS[script]
    drawn = _drawn(label_fonts, text)
    assert _painted(drawn).sum() > 200
    # Not as question marks (OpenCV 5.1's built-in face draws CJK so)...
    marks = "".join(c if c.isspace() else "?" for c in text)
    assert not np.array_equal(drawn, _drawn(label_fonts, marks))
    # ... and no cluster as the box of a missing glyph.
    tofu = _drawn(label_fonts, MISSING)
    assert _painted(tofu).sum() > 20  # the box is drawn: the comparison means something
    for start, end in labels.clusters(text):
        cluster = text[start:end]
        if not cluster.isspace() and cluster not in ",.":
            assert not np.array_equal(_drawn(label_fonts, cluster), tofu), (script, cluster)


def _ink_columns(image: np.ndarray) -> np.ndarray:
    return np.nonzero(_painted(image).any(axis=0))[0]


@pytest.mark.parametrize(("text", "first"), [
    (SCRIPTS["arabic"], "ب"), ("الصمام", "ب"), (SCRIPTS["hebrew"], "ת"), ("השסתום", "ת")])
def test_right_to_left_words_read_from_the_right(label_fonts: LabelFonts, text: str,
                                                 first: str) -> None:
    # The label still starts at its point, but its first letter is its rightmost, in a
    # word (shaping) and across words (reordering of runs): change that letter and only
    # the right end of the label changes.
    drawn = _drawn(label_fonts, text)
    changed = _columns(drawn, _drawn(label_fonts, first + text[1:]))
    xs = _ink_columns(drawn)
    assert changed.size and changed.min() > (xs.min() + xs.max()) / 2, (changed, xs)


@pytest.mark.parametrize("word", ["بيت", "تبني", "سبب"])
def test_arabic_letters_join(label_fonts: LabelFonts, word: str) -> None:
    # Every letter of these words joins the next: shaped, the word is one stroke with
    # no gap between its letters; unshaped, each letter stands apart in its own form.
    xs = _ink_columns(_drawn(label_fonts, word))
    assert xs.size and (np.diff(xs) == 1).all(), xs


def test_devanagari_forms_conjuncts_and_puts_the_vowel_sign_i_first(
        label_fonts: LabelFonts) -> None:
    def width(text: str) -> int:
        xs = _ink_columns(_drawn(label_fonts, text))
        return int(xs.max() - xs.min() + 1)

    # क + virama + ष is the conjunct क्ष, about one letter wide, not क, a virama and ष.
    assert width("क्ष") < 0.75 * (width("क") + width("ष"))
    # The vowel sign i is written after its consonant but drawn before (left of) it:
    # adding it changes the label from its very start.
    alone, with_i = _drawn(label_fonts, "क"), _drawn(label_fonts, "कि")
    assert _columns(alone, with_i).min() <= _ink_columns(alone).min() + 1


def test_a_label_mixing_scripts_takes_each_from_its_face(label_fonts: LabelFonts) -> None:
    # Each character comes from the first face that has it, spaces and digits from the
    # main one; the right-to-left part of a left-to-right line reads right to left.
    text = "Valve 3 صمام 2 阀门"
    layout = labels.lay_out(label_fonts, text, label_fonts.em(40))
    faces = [(run.text, run.font.getname()[0]) for run in layout.runs]
    # A number after Arabic letters is read with them (rule W2): "2" shows on their left.
    assert faces == [("Valve 3 ", "Noto Sans"), ("2", "Noto Sans"), (" ", "Noto Sans"),
                     ("صمام", "Noto Sans Arabic"), (" ", "Noto Sans"),
                     ("阀门", "Noto Sans CJK SC")], faces
    assert [run.rtl for run in layout.runs] == [False, False, True, True, False, False]
    levels = label_fonts.bidi.levels("abc صمام 3 باب")
    assert levels == [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    # Between two right-to-left words, a number and the spaces around it go with them.
    assert [run.text for run in labels.lay_out(label_fonts, "صمام 3 باب", 40.0).runs] == [
        "باب", " ", "3", " ", "صمام"]


def test_a_label_is_one_line(label_fonts: LabelFonts) -> None:
    # As the browser's canvas draws it: a line break or a tab is a space, and so is any
    # other paragraph separator (on which Pillow's layout fails).
    one_line = _drawn(label_fonts, "Valve left side")
    for text in ("Valve\nleft\tside", "Valve\rleft\fside", "Valve\u2029left\x85side"):
        assert np.array_equal(_drawn(label_fonts, text), one_line), text
    # A label of characters that draw nothing draws nothing (no outline of nothing).
    assert not _drawn(label_fonts, "\u200d\u200d\ufeff").any()


def test_label_fonts_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.ttf"):
        LabelFonts.open([str(tmp_path / "nowhere.ttf")])
    (tmp_path / "not-a-font.ttf").write_bytes(b"hello")
    with pytest.raises(ConfigError, match=r"not-a-font\.ttf"):
        LabelFonts.open([str(tmp_path / "not-a-font.ttf")])
    with pytest.raises(ConfigError, match="face index"):
        LabelFonts.open(["/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc#SC"])


async def test_a_server_without_its_label_fonts_does_not_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data",
                        label_fonts=(str(tmp_path / "nowhere.ttf"),))
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(ConfigError, match="VIDEOASSIST_LABEL_FONTS"):
            await runner.setup()
    finally:
        await runner.cleanup()


# -- bounded work --------------------------------------------------------------------

def test_drawing_work_is_bounded(monkeypatch: pytest.MonkeyPatch,
                                 label_fonts: LabelFonts) -> None:
    # Too much ink is refused before anything is drawn...
    scribble = {"id": "s", "kind": "pen", "color": "#ffffff", "width": 0.1,
                "points": [[i % 2, (i // 2) % 2] for i in range(1000)]}
    with pytest.raises(BadRequest, match="Too much drawing"):
        check_shapes([scribble])
    # ... and a label's work is bounded by the picture, however long and large it is:
    # FreeType rasterizes only the part that shows (plus a margin), and the outline's
    # distance transform runs on at most the picture plus its reach.
    outlines: list[tuple[int, int]] = []
    glyphs: list[tuple[int, int]] = []
    distance_transform = render.cv2.distanceTransform
    getmask2 = ImageFont.FreeTypeFont.getmask2

    def outlined(src: np.ndarray, *args: object) -> np.ndarray:
        outlines.append(src.shape)
        return distance_transform(src, *args)

    def rasterized(font: ImageFont.FreeTypeFont, *args: Any, **kwargs: Any) -> Any:
        mask, offset = getmask2(font, *args, **kwargs)
        glyphs.append(mask.size)
        return mask, offset

    monkeypatch.setattr(render.cv2, "distanceTransform", outlined)
    monkeypatch.setattr(ImageFont.FreeTypeFont, "getmask2", rasterized)
    width, height = 1280, 720
    for text in ("W" * 200, ("الصمام " * 40)[:200], "阀" * 200):
        outlines.clear()
        glyphs.clear()
        label = check_shapes([_label(text, points=[[0.0, 0.0]], width=0.1)])[0]
        out = render.draw(_canvas(width, height), [label], label_fonts)
        assert out.any()
        _, outline = render.text_metrics(label, width, height)
        assert outlines and all(h <= height + 2 * (outline + 1) and w <= width + 2 * (outline + 1)
                                for h, w in outlines), outlines
        # Drawn whole, each of these would be some 20 times the picture's area.
        assert glyphs and sum(w * h for w, h in glyphs) <= width * height, (text[:5], glyphs)


# Latin (kerning), Arabic words and one long joined word (the letter at a cut takes
# another form, and the seen's is wide), Devanagari conjuncts, a vowel sign i drawn left
# of the conjunct before it ("क्षि": the cut must leave room for it), CJK.
@pytest.mark.parametrize("text", ["W" * 60, "AVAVAV " * 10, ("الصمام " * 12).strip(), "س" * 90,
                                  "वाल्व खोलें " * 8, "क्षि" * 40, "打开阀门" * 16])
def test_a_long_label_is_cut_only_where_it_does_not_show(label_fonts: LabelFonts,
                                                         text: str) -> None:
    # The same label at the same size on a picture ten times as wide, where it fits
    # whole: the narrow picture shows the same pixels as the wide one's left part.
    narrow = render.draw(_canvas(640, 360), check_shapes([_label(text, width=0.01)]),
                         label_fonts)
    wide = render.draw(_canvas(6400, 360), check_shapes([_label(text, width=0.001,
                                                               points=[[0.005, 0.3]])]),
                       label_fonts)
    assert render.text_metrics(_label(text, width=0.01), 640, 360) == \
        render.text_metrics(_label(text, width=0.001), 6400, 360)
    assert _painted(wide[:, 640:]).sum() > 1000  # it does run past the narrow picture
    assert np.array_equal(narrow, wide[:, :640])


def test_a_snapshot_takes_200_labels_within_its_ink_one_stroke_more_is_refused() -> None:
    """snapshots.shapes.MAX_SHAPES and MAX_INK: a label counts MAX_INK / MAX_SHAPES, so
    the most shapes a snapshot carries, all small labels, are exactly its ink budget
    (their sum used to come out a hair above it in floating point, and 200 labels were
    refused as "too much drawing"). One more shape, or a stroke in place of a label
    that paints more than it, is refused."""
    def label(n: int) -> dict[str, Any]:
        return {"id": f"t{n}", "kind": "text", "points": [[0.5, 0.5]], "color": "#ff0000",
                "width": 0.004, "text": "a"}

    def pen(length: float) -> dict[str, Any]:
        return {"id": "p", "kind": "pen", "points": [[0.0, 0.5], [length, 0.5]],
                "color": "#ff0000", "width": 0.1}

    labels = [label(n) for n in range(MAX_SHAPES)]
    assert len(check_shapes(labels)) == MAX_SHAPES
    assert ink(pen(0.05)) < MAX_INK / MAX_SHAPES < ink(pen(1.0))
    assert len(check_shapes([*labels[1:], pen(0.05)])) == MAX_SHAPES
    for shapes, refusal in (([*labels, label(MAX_SHAPES)], "at most 200 shapes"),
                            ([*labels[1:], pen(1.0)], "Too much drawing")):
        with pytest.raises(BadRequest, match=refusal):
            check_shapes(shapes)
