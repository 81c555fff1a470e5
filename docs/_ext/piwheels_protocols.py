"""Sphinx directive listing every queue and payload of piwheels.protocols.

``.. piwheels-protocols::`` renders, from the declarations themselves, a
section per queue (its docstring, then each action with its data and the
comment written beside it) and a section per payload (each field, its type
and comment), so the documentation cannot drift from the code.
"""

import ast
import inspect
import re
import typing
from datetime import datetime, timedelta

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from piwheels import protocols


def describe(shape):
    """Return a short reST description of a data shape."""
    if shape is protocols.NoData:
        return '(none)'
    if shape is protocols.ProjectData:
        return ':ref:`project data <project-data>`'
    if isinstance(shape, type) and hasattr(shape, '_payload_fields'):
        return ':ref:`{0} <payload-{0}>`'.format(shape.__name__)
    if isinstance(shape, protocols.Text):
        return 'str ({}..{} chars)'.format(shape.min_length, shape.max_length)
    if isinstance(shape, protocols.Natural):
        if shape.maximum == protocols.Count.maximum:
            return 'int (>= 0)'
        return 'int (0..{})'.format(shape.maximum)
    if isinstance(shape, protocols.Sha256):
        return 'SHA256 (hex str)'
    if isinstance(shape, protocols.WheelFilename):
        return 'wheel filename'
    if isinstance(shape, protocols.Batch):
        return 'list of up to {} {}'.format(shape.max_items,
                                           describe(shape.shape))
    if isinstance(shape, protocols.Anything):
        return 'any'
    simple = {str: 'str', int: 'int', bool: 'bool', float: 'float',
              bytes: 'bytes', datetime: 'datetime', timedelta: 'duration',
              type(None): 'None'}
    if shape in simple:
        return simple[shape]
    origin = typing.get_origin(shape)
    args = typing.get_args(shape)
    if origin is typing.Union:
        return ' or '.join(describe(arg) for arg in args)
    if origin is typing.Literal:
        return 'one of ' + ', '.join('``{!r}``'.format(arg) for arg in args)
    if origin is list:
        return 'list of ' + describe(args[0])
    if origin in (set, frozenset):
        return 'set of ' + describe(args[0])
    if origin is tuple:
        return '(' + ', '.join(describe(arg) for arg in args) + ')'
    if origin is dict:
        return 'map of {} to {}'.format(describe(args[0]), describe(args[1]))
    return '``{!r}``'.format(shape)


class Source:
    """The source of piwheels.protocols: docstrings and comments by name."""

    def __init__(self):
        self.lines = inspect.getsource(protocols).splitlines()
        self.tree = ast.parse('\n'.join(self.lines))
        self.segments = {}     # name -> (first line, last line), 0-based
        self.docstrings = {}   # name -> docstring following its assignment
        self.references = {}   # name -> names its definition uses
        body = self.tree.body
        for index, node in enumerate(body):
            if isinstance(node, (ast.Assign, ast.ClassDef)):
                name = (node.name if isinstance(node, ast.ClassDef)
                        else getattr(node.targets[0], 'id', None))
                if name is None:
                    continue
                self.segments[name] = (node.lineno - 1, node.end_lineno - 1)
                self.references[name] = [
                    sub.id for sub in ast.walk(node)
                    if isinstance(sub, ast.Name)]
                following = body[index + 1] if index + 1 < len(body) else None
                if (isinstance(following, ast.Expr)
                        and isinstance(following.value, ast.Constant)
                        and isinstance(following.value.value, str)):
                    self.docstrings[name] = inspect.cleandoc(
                        following.value.value)

    _NEW_ENTRY = re.compile(r"^\s*('\w+'|\w+\s*[:=]|Required\(|[)}\]])")

    def _entry_comment(self, number, last):
        """Return the comments of the entry starting on line *number*: on
        its lines and the comment lines after it, up to the next entry."""
        parts = []
        for index in range(number, last + 1):
            line = self.lines[index]
            if index > number and (self._NEW_ENTRY.match(line)
                                   or not line.strip()):
                break
            if '#' in line:
                parts.append(line.split('#', 1)[1].strip())
        return ' '.join(parts)

    def comment(self, name, key, seen=None):
        """Return the comment beside *key* in the definition of *name* (or a
        definition it refers to), with its continuation lines."""
        seen = seen or set()
        seen.add(name)
        if name not in self.segments:
            return ''
        first, last = self.segments[name]
        pattern = re.compile(r"^\s*(?:'{0}'|{0}\b)\s*[:=,]".format(
            re.escape(key)))
        for number in range(first, last + 1):
            if pattern.match(self.lines[number]):
                text = self._entry_comment(number, last)
                if text:
                    return text
        for other in self.references.get(name, []):
            if other not in seen:
                text = self.comment(other, key, seen)
                if text:
                    return text
        return ''


def queue_lines(source, protocol):
    lines = [protocol.name, '-' * len(protocol.name), '']
    doc = source.docstrings.get(protocol.name, '')
    lines.extend(doc.splitlines() + [''])
    if protocol.max_size:
        lines.extend(['Largest message: {:,} bytes.'.format(
            protocol.max_size), ''])
    lines.extend(['.. list-table::', '   :header-rows: 1',
                  '   :widths: 12 14 30 44', '',
                  '   * - Direction', '     - Action', '     - Data',
                  '     - Meaning'])
    for direction, label in (('recv', 'to binder'), ('send', 'from binder')):
        for action, shape in getattr(protocol, direction).items():
            lines.extend([
                '   * - ' + label,
                '     - ``{}``'.format(action),
                '     - ' + describe(shape),
                '     - ' + (source.comment(protocol.name, action) or '-')])
    return lines + ['']


def payload_lines(source, cls):
    title = cls.__name__
    lines = ['.. _payload-{}:'.format(title), '', title, '-' * len(title), '']
    lines.extend(inspect.cleandoc(cls.__doc__ or '').splitlines() + [''])
    lines.extend(['.. list-table::', '   :header-rows: 1',
                  '   :widths: 22 30 48', '',
                  '   * - Field', '     - Type', '     - Meaning'])
    for name in cls._fields:
        lines.extend([
            '   * - ``{}``'.format(name),
            '     - ' + describe(cls.__annotations__[name]),
            '     - ' + (source.comment(title, name) or '-')])
    return lines + ['']


def project_data_lines(source):
    lines = ['.. _project-data:', '', 'Project data', '------------', '']
    lines.extend(['The reply to ``PROJDATA``: a map with these keys (further '
                  'keys pass through).', ''])
    scopes = {'ProjectData': 'package', '_PROJECT_RELEASE': 'per version',
              '_PROJECT_ABI': 'per ABI of a version',
              '_PROJECT_FILE': 'per wheel of a version'}
    for name, scope in scopes.items():
        first, last = source.segments[name]
        for number in range(first, last + 1):
            match = re.match(r"^\s*Required\('(\w+)'\)",
                             source.lines[number])
            if match:
                lines.append('* ``{}`` ({}): {}'.format(
                    match.group(1), scope,
                    source._entry_comment(number, last) or '-'))
    return lines + ['']


class ProtocolsDirective(SphinxDirective):
    """``.. piwheels-protocols::`` -- every queue, then every payload."""

    has_content = False

    def run(self):
        source = Source()
        lines = ['Queues', '======', '']
        for value in vars(protocols).values():
            if isinstance(value, protocols.Protocol):
                lines.extend(queue_lines(source, value))
        lines.extend(['Payloads', '========', ''])
        for value in vars(protocols).values():
            if isinstance(value, type) and hasattr(value, '_payload_fields'):
                lines.extend(payload_lines(source, value))
        lines.extend(project_data_lines(source))
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(
            self.state, StringList(lines, source='piwheels.protocols'),
            container)
        return container.children


def setup(app):
    app.add_directive('piwheels-protocols', ProtocolsDirective)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
