"""The ``cmr`` command line: the typer app, its global options, and where errors become exit codes.

Exit codes: 0 success, 1 a user error (any ``RegistryError``, a bad option or argument, a
file that cannot be read), 2 an unexpected failure (a bug: ``--debug`` shows where),
130 interrupted. Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from crucible_model_registry.cli import _session
from crucible_model_registry.domain.redaction import redact, redact_exception
from crucible_model_registry.errors import RegistryError

__all__ = ["app", "build_app", "run"]

# Each command's noun module, in the order their panels appear in `cmr --help`; a run
# imports only the module of the command it names.
_NOUNS: dict[str, tuple[str, ...]] = {
    "db": ("init", "db"),
    "serve": ("serve",),
    "versions": ("register", "show", "promote", "history", "metrics", "delete", "tag"),
    "diff": ("diff",),
    "models": ("models", "model"),
    "query": ("query", "list"),
    "lineage": ("lineage",),
    "artifacts": ("upload", "download", "url", "verify", "artifact", "gc"),
    "aliases": ("alias",),
    "policy": ("policy",),
    "token": ("token",),
    "audit": ("audit",),
    "move": ("export", "import"),
    "demo": ("demo",),
}


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="cmr",
        help=(
            "crucible-model-registry: versions, lineage, stages and verified artifacts of "
            "trained models.\n\nRefs: an id (42), model@version, model@stage "
            "(model@production), model@latest or model@alias."
        ),
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        # The distribution's metadata, not the package root: the CLI may not import what
        # the root re-exports (the layer contract keeps cli and stages apart).
        sys.stdout.write(f"cmr (crucible-model-registry) {version('crucible-model-registry')}\n")
        raise typer.Exit


def _global_options(
    *,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL of the registry database "
            "(default: CMR_DATABASE_URL, else SQLite under CMR_HOME).",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Artifact storage backend: local, s3, huggingface, noop or a plugin "
            "(default: CMR_STORAGE_BACKEND, else local).",
            show_default=False,
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="URL of a registry server (cmr serve) to use instead of a database "
            "(default: CMR_SERVER_URL).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Bearer token for --server (default: CMR_TOKEN).",
            show_default=False,
        ),
    ] = None,
    json_output: _session.JsonFlag = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only ids (or nothing) on success; also after the command."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of errors; also after the command.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    session = _session.current()
    session.database_url = database_url
    session.storage = storage
    session.server = server
    session.token = token
    session.json = json_output
    session.quiet = quiet
    session.debug = debug or session.debug


def build_app(command: str | None = None) -> typer.Typer:
    """The ``cmr`` app: every command, or only the noun module that holds ``command``.

    Typer turns each command function into a click command by evaluating its annotations,
    which costs milliseconds per command; a run that names its command imports and builds
    only that command's module, so that start-up does not grow with the number of commands.
    """
    built = _new_app()
    built.callback()(_global_options)
    nouns = [noun for noun, commands in _NOUNS.items() if command in commands] or list(_NOUNS)
    for noun in nouns:
        module = importlib.import_module(f"{__name__}.{noun}")
        built.add_typer(module.app)
    return built


def __getattr__(name: str) -> typer.Typer:
    # `app` (every command) is built on first access, for typer's tools and documentation.
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_OPTIONS_WITH_VALUES = frozenset({"--database-url", "--storage", "--server", "--token"})


def _command_name(args: Sequence[str]) -> str | None:
    """The first argument that is not a global option (or its value): the command's name."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _OPTIONS_WITH_VALUES:
            skip = True
        elif arg == "--" or not arg.startswith("-"):
            return None if arg == "--" else arg
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


# The core's messages name Python arguments; at a shell, the options are what to type.
_CLI_WORDING = (
    ("on_duplicate='return'", "--on-duplicate return"),
    ("force=True", "--force"),
    ("alias_history()", "`cmr alias history MODEL`"),
    (" (or registry.migrate())", ""),
)


def _cli_message(exc: Exception) -> str:
    message = str(exc)
    for api_words, cli_words in _CLI_WORDING:
        message = message.replace(api_words, cli_words)
    return message


def _fail(message: str, exc: BaseException, code: int) -> int:
    # A driver's or SDK's message, and the causes in a traceback, may hold a URL's password.
    if _session.current().debug:
        sys.stderr.write(redact_exception(exc)[1])
    sys.stderr.write(f"error: {_one_line(redact(message))}\n")
    return code


_HOISTED_FLAGS = frozenset({"--quiet", "-q", "--debug"})


def _hoist_global_flags(args: list[str]) -> list[str]:
    """Move ``--quiet``/``-q``/``--debug`` given after the command to the front (before ``--``).

    People write ``cmr query -q`` as often as ``cmr -q query``; both mean the same.
    """
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in _HOISTED_FLAGS]
    rest = [a for a in args[:end] if a not in _HOISTED_FLAGS]
    return [*flags, *rest, *args[end:]]


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``cmr`` with ``argv`` (default: the process arguments) and return the exit code."""
    args = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    session = _session.reset()
    # --debug must also cover errors raised while the options themselves are parsed.
    session.debug = "--debug" in args or os.environ.get("CMR_DEBUG", "") not in ("", "0")
    # Shell completion needs every command; a run needs only the one it names.
    completing = any(key.startswith("_CMR_COMPLETE") for key in os.environ)
    command = typer.main.get_command(build_app(None if completing else _command_name(args)))
    try:
        result = command.main(args, prog_name="cmr", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except (RegistryError, _session.CommandError) as exc:
        return _fail(_cli_message(exc), exc, 1)
    except typer.TyperException as exc:  # click's usage errors: bad option, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(exc.format_message())
            return 0
        return _fail(exc.format_message(), exc, 1)
    except typer.Abort as exc:
        return _fail("aborted", exc, 1)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except OSError as exc:  # a file we were asked to read or write
        return _fail(str(exc), exc, 1)
    except Exception as exc:
        message = f"unexpected {type(exc).__name__}: {exc}"
        if not _session.current().debug:
            message += " (run with --debug for the traceback)"
        return _fail(message, exc, 2)
    finally:
        _session.current().close()
