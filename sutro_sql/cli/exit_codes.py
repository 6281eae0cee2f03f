"""Errors become one line on stderr and an exit code a scheduler can act on.

DuckDB turns an exception raised inside a Python UDF (`sutro_run`) into text, so the
sutro-sql class is recovered from that text and mapped through its `exit_code`.
"""

from __future__ import annotations

import re

from .. import environment
from ..errors import ExitCode
from ..errors import redact as redact_secrets
from .variables import VariableError

EXIT_CODE_MEANINGS = {
    ExitCode.OK: "everything succeeded",
    ExitCode.INTERNAL: "unexpected error in sutro-sql (rerun with --debug, report it)",
    ExitCode.USAGE: "bad command-line arguments",
    ExitCode.BAD_SQL: "SQL that does not parse, names a missing table/column, or is refused",
    ExitCode.BAD_INPUT: "bad Function input, unknown Function/job, invalid spec, variable or data",
    ExitCode.BACKEND_UNAVAILABLE: "backend unreachable, or still failing after retries",
    ExitCode.PARTIAL_FAILURE: "everything ran but some rows failed (on_error := 'null')",
    ExitCode.UNAUTHORIZED: "the deployment refused the API key",
    ExitCode.JOB_FAILED: "a batch job ended FAILED or CANCELLED",
    ExitCode.INTERRUPTED: "run stopped by SIGINT: running jobs handed back, a re-run resumes them",
    ExitCode.TERMINATED: "run stopped by SIGTERM (e.g. a scheduler timeout): same as 130",
}
EXIT_CODE_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code.value}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()
)


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map sutro-sql errors, DuckDB errors and UDF errors (which DuckDB wraps as text) to an exit code."""
    import duckdb

    from ..errors import SutroSQLError

    if isinstance(exc, duckdb.Error):
        wrapped = _wrapped_udf_error(str(exc))
        if wrapped is not None:
            return wrapped.exit_code
        if isinstance(exc, duckdb.ParserException | duckdb.CatalogException | duckdb.BinderException):
            return ExitCode.BAD_SQL
        return ExitCode.BAD_INPUT  # conversion, constraint, I/O: the data or a file is wrong
    if isinstance(exc, SutroSQLError):
        return exc.exit_code
    if isinstance(exc, VariableError | OSError):
        return ExitCode.BAD_INPUT
    return ExitCode.INTERNAL


_UDF_ERROR = re.compile(r"Python exception occurred while executing the UDF: (\w+): ")


def _wrapped_udf_error(message: str) -> type | None:
    """DuckDB turns an exception raised in a Python UDF into text; recover its sutro-sql class."""
    from .. import errors

    match = _UDF_ERROR.search(message)
    cls = getattr(errors, match.group(1), None) if match else None
    return cls if isinstance(cls, type) and issubclass(cls, errors.SutroSQLError) else None


def error_line(exc: BaseException) -> str:
    """One clear line: DuckDB's first line (without its UDF wrapper), or the error's own message."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    match = _UDF_ERROR.search(text)
    if match:
        text = text[match.end() :]
    if exit_code_for(exc) is ExitCode.INTERNAL:
        return f"internal error: {type(exc).__name__}: {text} (rerun with --debug for the traceback)"
    return text


def redact(text: str, *secrets: str | None) -> str:
    """Remove API keys (given, or from the environment) from text that is about to be printed."""
    candidates = (*secrets, *environment.secrets())
    return redact_secrets(text, *(secret for secret in candidates if secret and len(secret) >= 4))
