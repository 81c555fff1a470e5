"""Tests for piwheels.ranges, starting with the examples of the spec."""

import doctest

from piwheels import ranges
from piwheels.ranges import consolidate, exclude, intersect, split


def test_ranges_docstring_examples_hold():
    failures, tried = doctest.testmod(ranges)
    assert tried == 11
    assert failures == 0


def test_ranges_consolidate():
    assert list(consolidate([range(0, 5), range(4, 10)])) == [range(0, 10)]
    assert list(consolidate([range(0, 5), range(5, 10)])) == [range(0, 10)]
    assert list(consolidate([range(0, 5), range(6, 10)])) == [
        range(0, 5), range(6, 10)]


def test_ranges_consolidate_contained_and_empty():
    assert list(consolidate([])) == []
    assert list(consolidate([range(0, 10), range(2, 3), range(9, 12)])) == [
        range(0, 12)]


def test_ranges_exclude():
    assert list(exclude([range(10)], range(2))) == [range(2, 10)]
    assert list(exclude([range(10)], range(2, 4))) == [
        range(0, 2), range(4, 10)]


def test_ranges_exclude_across_several():
    assert list(exclude([range(0, 5), range(6, 10), range(12, 20)],
                        range(3, 14))) == [range(0, 3), range(14, 20)]
    assert list(exclude([range(0, 5)], range(0, 5))) == []
    assert list(exclude([range(0, 5)], range(7, 9))) == [range(0, 5)]


def test_ranges_intersect():
    assert intersect(range(10), range(5)) == range(0, 5)
    assert intersect(range(10), range(10, 2)) is None
    assert intersect(range(10), range(2, 5)) == range(2, 5)
    assert intersect(range(0, 5), range(5, 10)) is None


def test_ranges_split():
    assert list(split([range(10)], 5)) == [range(0, 5), range(5, 10)]
    assert list(split([range(10)], 0)) == [range(0, 10)]
    assert list(split([range(10)], 20)) == [range(0, 10)]
    assert list(split([range(0, 4), range(6, 10)], 8)) == [
        range(0, 4), range(6, 8), range(8, 10)]
