"""piw-sense's drawing helpers: any text can be drawn, bars and fills
stay within the display whatever figure they are given."""

from piwheels.monitor.sense.images import (
    BLACK, BLUE, WHITE, Image, bar, mix, pulse, text_columns,
)


def test_text_of_characters_the_font_lacks_is_drawn_as_question_marks():
    assert text_columns('\u00fc\u2603\x00') == text_columns('???')
    assert text_columns('pi-1') == text_columns('PI-1')
    # glyphs are 5 high, one blank column apart
    columns = text_columns('I1')
    assert len(columns) == 7
    assert all(len(column) == 5 for column in columns)
    assert columns[3] == (False,) * 5


def test_bars_and_fills_take_any_figure():
    assert bar(-3, WHITE, BLUE) == [BLUE] * 8
    assert bar(float('nan'), WHITE, BLUE) == [BLUE] * 8
    assert bar(1e9, WHITE, BLUE) == [WHITE] * 8
    assert bar(2.5, WHITE, BLUE)[:4] == [WHITE, WHITE, (128, 128, 255),
                                         BLUE]
    image = Image()
    image.fill(7.5, WHITE)
    assert image.pixels == [WHITE] * 64
    image = Image()
    image.fill(float('nan'), WHITE)
    assert image.pixels == [BLACK] * 64
    assert mix(BLACK, WHITE, 2) == WHITE
    assert pulse(0) == 0 and pulse(0.5) == 1


def test_text_outside_the_display_is_clipped():
    image = Image()
    image.text('A very long label that scrolls', WHITE, 1e6, top=6)
    assert len(image.pixels) == 64
    # rows 6 and 7 hold the top of the text; nothing wrapped to the top
    assert image.pixels[:48] == [BLACK] * 48
