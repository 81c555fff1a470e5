"""The exceptions of piwheels: one root, with leaves that also inherit the builtin that fits."""


class PiwheelsError(Exception):
    """Root of every error piwheels raises on purpose.

    A command turns one of these into a one-line message on stderr and exits
    with :attr:`exit_code`.
    """
    exit_code = 1


class ConfigError(PiwheelsError, ValueError):
    """A command-line option or configuration file value is wrong."""
    exit_code = 2


class ProtocolError(PiwheelsError, ValueError):
    """A message failed to decode or did not match its queue's protocol."""


class TransportError(PiwheelsError, IOError):
    """A socket operation failed (timeout, peer gone)."""


class DatabaseError(PiwheelsError, RuntimeError):
    """The database is unreachable, the wrong version, or refused a request."""


class MasterError(PiwheelsError, RuntimeError):
    """The master refused a request or is not running."""


class MasterTimeout(TransportError, TimeoutError):
    """The master did not answer a slave (or tool) within its timeout."""


class TransferError(PiwheelsError, ValueError):
    """A file transfer broke its rules (size cap, chunk outside the file) or
    its file failed to verify (wrong size or SHA256)."""


class FileConflict(TransferError):
    """A verified file has the name of a published file with other bytes;
    published files are never replaced."""


class PyPIError(PiwheelsError, IOError):
    """PyPI could not be reached, refused a request, or answered something
    that cannot be used (an HTTP error, a fault, garbage)."""
