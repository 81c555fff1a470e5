"""Byte-range arithmetic for tracking which parts of a file have arrived.

Ranges are Python :class:`range` objects with a step of 1, kept in lists in
ascending order; :class:`~piwheels.states.TransferState` uses these to know
which chunks of a file it still has to fetch.
"""


def consolidate(ranges):
    """Merge overlapping or adjacent ranges of an ascending list.

    >>> list(consolidate([range(0, 5), range(4, 10)]))
    [range(0, 10)]
    >>> list(consolidate([range(0, 5), range(5, 10)]))
    [range(0, 10)]
    >>> list(consolidate([range(0, 5), range(6, 10)]))
    [range(0, 5), range(6, 10)]
    """
    current = None
    for item in ranges:
        if current is None:
            current = item
        elif item.start <= current.stop:
            current = range(current.start, max(current.stop, item.stop))
        else:
            yield current
            current = item
    if current is not None:
        yield current


def exclude(ranges, ex):
    """Remove every value in *ex* from an ascending list of non-overlapping
    ranges.

    >>> list(exclude([range(10)], range(2)))
    [range(2, 10)]
    >>> list(exclude([range(10)], range(2, 4)))
    [range(0, 2), range(4, 10)]
    """
    for item in ranges:
        if intersect(item, ex) is None:
            yield item
            continue
        if item.start < ex.start:
            yield range(item.start, ex.start)
        if ex.stop < item.stop:
            yield range(ex.stop, item.stop)


def intersect(range1, range2):
    """Return the range of values in both *range1* and *range2* (both with a
    step of 1), or ``None`` if they do not overlap.

    >>> intersect(range(10), range(5))
    range(0, 5)
    >>> intersect(range(10), range(10, 2))
    >>> intersect(range(10), range(2, 5))
    range(2, 5)
    """
    start = max(range1.start, range2.start)
    stop = min(range1.stop, range2.stop)
    if start < stop:
        return range(start, stop)
    return None


def split(ranges, i):
    """Split the range containing *i* into one ending at *i* and one starting
    at *i*; ranges not containing *i* are returned unchanged.

    >>> list(split([range(10)], 5))
    [range(0, 5), range(5, 10)]
    >>> list(split([range(10)], 0))
    [range(0, 10)]
    >>> list(split([range(10)], 20))
    [range(0, 10)]
    """
    for item in ranges:
        if item.start < i < item.stop:
            yield range(item.start, i)
            yield range(i, item.stop)
        else:
            yield item
