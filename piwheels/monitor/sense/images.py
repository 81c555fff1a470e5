"""Drawing on the Sense HAT's 8x8 display: colours, bars, a pulse, and a small font for scrolling text.

An :class:`Image` is 64 ``(red, green, blue)`` pixels, row by row from the
top left, as :meth:`SenseHat.set_pixels` takes them. Text is drawn in a
3-5 pixel wide, 5 pixel high font of our own (upper-case letters, digits
and some punctuation; lower case is drawn upper case and anything else as
``?``), scrolling from right to left when it does not fit.
"""

import math

WIDTH = HEIGHT = 8

BLACK = (0, 0, 0)
WHITE = (255, 255, 255)
GRAY = (128, 128, 128)
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
DARK_BLUE = (0, 0, 96)
YELLOW = (255, 255, 0)
PURPLE = (128, 0, 255)
CYAN = (0, 128, 128)

#: text scrolls by this many columns a second
SCROLL_SPEED = 8

#: blank columns between the end of scrolling text and its start again
SCROLL_GAP = 4

#: seconds a pulse takes from dark to bright and back
PULSE_PERIOD = 1.0

# Each glyph is five rows of the same width; '#' is lit.
_GLYPHS = {
    'A': ('.#.', '#.#', '###', '#.#', '#.#'),
    'B': ('##.', '#.#', '##.', '#.#', '##.'),
    'C': ('.##', '#..', '#..', '#..', '.##'),
    'D': ('##.', '#.#', '#.#', '#.#', '##.'),
    'E': ('###', '#..', '##.', '#..', '###'),
    'F': ('###', '#..', '##.', '#..', '#..'),
    'G': ('.##', '#..', '#.#', '#.#', '.##'),
    'H': ('#.#', '#.#', '###', '#.#', '#.#'),
    'I': ('###', '.#.', '.#.', '.#.', '###'),
    'J': ('..#', '..#', '..#', '#.#', '.#.'),
    'K': ('#.#', '#.#', '##.', '#.#', '#.#'),
    'L': ('#..', '#..', '#..', '#..', '###'),
    'M': ('#...#', '##.##', '#.#.#', '#...#', '#...#'),
    'N': ('#..#', '##.#', '#.##', '#..#', '#..#'),
    'O': ('.#.', '#.#', '#.#', '#.#', '.#.'),
    'P': ('##.', '#.#', '##.', '#..', '#..'),
    'Q': ('.#.', '#.#', '#.#', '##.', '.##'),
    'R': ('##.', '#.#', '##.', '#.#', '#.#'),
    'S': ('.##', '#..', '.#.', '..#', '##.'),
    'T': ('###', '.#.', '.#.', '.#.', '.#.'),
    'U': ('#.#', '#.#', '#.#', '#.#', '###'),
    'V': ('#.#', '#.#', '#.#', '#.#', '.#.'),
    'W': ('#...#', '#...#', '#.#.#', '##.##', '#...#'),
    'X': ('#.#', '#.#', '.#.', '#.#', '#.#'),
    'Y': ('#.#', '#.#', '.#.', '.#.', '.#.'),
    'Z': ('###', '..#', '.#.', '#..', '###'),
    '0': ('###', '#.#', '#.#', '#.#', '###'),
    '1': ('.#.', '##.', '.#.', '.#.', '###'),
    '2': ('##.', '..#', '.#.', '#..', '###'),
    '3': ('##.', '..#', '.#.', '..#', '##.'),
    '4': ('#.#', '#.#', '###', '..#', '..#'),
    '5': ('###', '#..', '##.', '..#', '##.'),
    '6': ('.##', '#..', '###', '#.#', '###'),
    '7': ('###', '..#', '.#.', '.#.', '.#.'),
    '8': ('###', '#.#', '###', '#.#', '###'),
    '9': ('###', '#.#', '###', '..#', '##.'),
    ' ': ('..', '..', '..', '..', '..'),
    '.': ('.', '.', '.', '.', '#'),
    ',': ('.', '.', '.', '#', '#'),
    ':': ('.', '#', '.', '#', '.'),
    '!': ('#', '#', '#', '.', '#'),
    '-': ('...', '...', '###', '...', '...'),
    '+': ('...', '.#.', '###', '.#.', '...'),
    '=': ('...', '###', '...', '###', '...'),
    '_': ('...', '...', '...', '...', '###'),
    '/': ('..#', '..#', '.#.', '#..', '#..'),
    '%': ('#.#', '..#', '.#.', '#..', '#.#'),
    '?': ('##.', '..#', '.#.', '...', '.#.'),
    '(': ('.#', '#.', '#.', '#.', '.#'),
    ')': ('#.', '.#', '.#', '.#', '#.'),
}

#: the height of the font's glyphs
FONT_HEIGHT = 5


def clamp(value, low=0.0, high=1.0):
    """Return *value* limited to *low*..*high* (NaN counts as *low*)."""
    if not value >= low:
        return low
    return min(value, high)


def mix(background, foreground, amount):
    """Return the colour *amount* (0..1) of the way from *background* to
    *foreground*."""
    amount = clamp(amount)
    return tuple(int(round(back + (fore - back) * amount))
                 for back, fore in zip(background, foreground))


def dim(colour, amount):
    """Return *colour* at *amount* (0..1) of its brightness."""
    return mix(BLACK, colour, amount)


def pulse(seconds, period=PULSE_PERIOD):
    """Return the brightness (0..1) of a pulse at *seconds*: 0 at every whole
    *period*, 1 half way between."""
    return 0.5 - 0.5 * math.cos(2 * math.pi * seconds / period)


def bar(value, foreground, background, length=WIDTH):
    """Return *length* pixels showing *value* (0..*length*) as a bar of
    *foreground* over *background*, the last pixel in part."""
    return [mix(background, foreground, value - index)
            for index in range(length)]


class Image:
    """An 8x8 picture, all *background* to start with."""

    def __init__(self, background=BLACK):
        self.pixels = [background] * (WIDTH * HEIGHT)

    def __getitem__(self, position):
        x, y = position
        return self.pixels[y * WIDTH + x]

    def __setitem__(self, position, colour):
        x, y = position
        if 0 <= x < WIDTH and 0 <= y < HEIGHT:
            self.pixels[y * WIDTH + x] = colour

    def row(self, y, colours):
        """Set row *y* to the 8 *colours*."""
        for x, colour in enumerate(colours):
            self[x, y] = colour

    def fill(self, amount, colour, rows=HEIGHT):
        """Light *amount* (0..1) of the top *rows* rows in *colour*, from
        the bottom row up, each row from the left (the background fill of
        the statistics)."""
        count = int(round(clamp(amount) * rows * WIDTH))
        for index in range(count):
            y, x = divmod(index, WIDTH)
            self[x, rows - 1 - y] = colour

    def text(self, text, colour, seconds, top=1):
        """Draw *text* in *colour* with its top at row *top*: centred when
        it fits, else scrolled *seconds* into its scrolling."""
        columns = text_columns(text)
        if len(columns) <= WIDTH:
            start = (WIDTH - len(columns)) // 2
            visible = [None] * start + columns
        else:
            strip = columns + [(False,) * FONT_HEIGHT] * SCROLL_GAP
            offset = int(max(0.0, seconds) * SCROLL_SPEED) % len(strip)
            visible = [strip[(offset + x) % len(strip)]
                       for x in range(WIDTH)]
        for x, column in enumerate(visible[:WIDTH]):
            if column is None:
                continue
            for y, lit in enumerate(column):
                if lit:
                    self[x, top + y] = colour

    def as_list(self):
        """The pixels as :meth:`SenseHat.set_pixels` takes them."""
        return [list(pixel) for pixel in self.pixels]


def text_columns(text):
    """Return *text* as the columns of its glyphs (one blank column between
    glyphs), each a tuple of :data:`FONT_HEIGHT` booleans."""
    columns = []
    for index, char in enumerate(text.upper()):
        glyph = _GLYPHS.get(char, _GLYPHS['?'])
        if index:
            columns.append((False,) * FONT_HEIGHT)
        for x in range(len(glyph[0])):
            columns.append(tuple(row[x] == '#' for row in glyph))
    return columns
