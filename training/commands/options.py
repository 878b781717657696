"""Command-line options generated from a stage's settings model, so each setting is defined once.

``add_stage_options(parser, train_v2)`` adds ``--config``, ``--seed``, ``--no-progress`` and one
option per setting: ``--encoder``, ``--pos-weight-cap``, ``--training-epochs``... (nested models get
their field name as prefix; a field's ``json_schema_extra={"flag": ...}`` renames its option, and a
flag without dashes makes it positional). Values given on the command line override, in this
order, the model defaults and the matching section of an optional ``--config pipeline.yaml``;
pydantic validates the result, so a bad value names its key.
"""

from __future__ import annotations

import argparse
import functools
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from service.text import Preprocessing

if TYPE_CHECKING:
    from service.settings import Settings as ServiceSettings

Settings = TypeVar("Settings", bound=BaseModel)
_DEST_PREFIX = "setting__"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _choices(annotation: Any) -> list[str] | None:
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    return None


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in get_args(annotation) if arg is not type(None))
    return origin is list


def add_settings_options(
    parser: argparse.ArgumentParser, model: type[BaseModel], *, prefix: str = "", only: Sequence[str] = ()
) -> None:
    """One ``--option`` per field of ``model`` (or of its fields named in ``only``), recursively,
    defaulting to "not given"."""
    for name, info in model.model_fields.items():
        if only and name not in only:
            continue
        nested = _nested_model(info.annotation)
        flag = f"--{prefix}{name}".replace("_", "-")
        dest = f"{_DEST_PREFIX}{prefix}{name}".replace("-", "_")
        if nested is not None:
            add_settings_options(parser, nested, prefix=f"{prefix}{name}-")
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        flag = str(extra.get("flag", flag))
        default = "required" if info.is_required() else f"default: {info.get_default(call_default_factory=True)}"
        help_text = f"{info.description or ''} ({default})".strip()
        if not flag.startswith("-"):
            parser.add_argument(dest, nargs="+" if _is_list(info.annotation) else None, metavar=flag, help=help_text)
        elif _is_bool(info.annotation):
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif _is_list(info.annotation):
            parser.add_argument(flag, dest=dest, nargs="*", default=None, help=help_text, metavar="VALUE")
        else:
            parser.add_argument(
                flag, dest=dest, default=None, choices=_choices(info.annotation), help=help_text, metavar="VALUE"
            )


def _given(args: argparse.Namespace, model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        if nested is not None:
            inner = _given(args, nested, prefix=f"{prefix}{name}_")
            if inner:
                values[name] = inner
            continue
        value = getattr(args, f"{_DEST_PREFIX}{prefix}{name}".replace("-", "_"), None)
        if value is not None:
            values[name] = value
    return values


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def settings_from_args(
    args: argparse.Namespace, model: type[Settings], *, base: dict[str, Any] | None = None, key: str = "settings"
) -> Settings:
    """``model`` built from ``base`` (e.g. a config section) overridden by the options given."""
    try:
        return model.model_validate(_merge(base or {}, _given(args, model)))
    except ValidationError as exc:
        problems = "; ".join(
            f"{key}.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise SystemExit(f"error: {problems}") from exc


def add_stage_options(parser: argparse.ArgumentParser, stage: ModuleType, *, table_format: bool = False) -> None:
    """``--config`` (a pipeline YAML whose section gives the base settings), ``--seed``, ``--no-progress``,
    ``--format`` of the tables written if ``table_format``, and one option per field of ``stage.Settings``."""
    from training.config import PipelineConfig

    seed, tables = PipelineConfig.model_fields["seed"], PipelineConfig.model_fields["table_format"]
    parser.add_argument("--config", type=Path, help="pipeline YAML: its section of this stage gives the defaults")
    parser.add_argument(
        "--seed", type=int, default=None, help=f"random seed (default: the config's, else {seed.default})"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    if table_format:
        parser.add_argument(
            "--format", choices=_choices(tables.annotation), default=tables.default, help=tables.description
        )
    add_settings_options(parser, stage.Settings)


def stage_settings(args: argparse.Namespace, stage: ModuleType) -> tuple[Any, int, Preprocessing]:
    """``(stage.Settings from --config and the options given, seed, preprocessing)``; without
    ``--config``: the settings' defaults and the pipeline config's default seed."""
    from training.config import PipelineConfig, load_config

    if args.config is None:
        seed, section, preprocessing = PipelineConfig.model_fields["seed"].default, None, Preprocessing()
    else:
        config = load_config(args.config)
        seed, section, preprocessing = config.seed, config.section(stage.SECTION), config.preprocessing
    seed = args.seed if args.seed is not None else seed
    return settings_from_args(args, stage.Settings, base=section, key=stage.SECTION), seed, preprocessing


def add_bundle_options(
    parser: argparse.ArgumentParser,
    *,
    prefix: str = "",
    required: bool = True,
    models_help: str = "directory holding the bundles",
) -> None:
    """``--<prefix>models-dir``, ``--<prefix>emotion-bundle``, ``--<prefix>information-bundle``: the two
    bundles the service would load (``service.settings.Settings``)."""
    models_dir = f"--{prefix}models-dir"
    parser.add_argument(models_dir, type=Path, required=required, help=models_help)
    parser.add_argument(
        f"--{prefix}emotion-bundle", default="emotion", help=f"emotion bundle directory under {models_dir}"
    )
    parser.add_argument(
        f"--{prefix}information-bundle",
        default="information",
        help=f"information bundle directory under {models_dir} (not needed, and not loaded, when the emotion "
        "bundle carries the information head)",
    )


def add_mode_option(parser: argparse.ArgumentParser) -> None:
    """``--mode``: the service's mode (which information threshold routes a comment)."""
    from service.settings import Mode

    parser.add_argument("--mode", choices=get_args(Mode), default="precision", help="the service's mode")


def bundle_settings(args: argparse.Namespace, *, prefix: str = "") -> ServiceSettings | None:
    """The service settings of the bundles given by ``add_bundle_options(prefix=prefix)``; None when
    its ``--<prefix>models-dir`` was not given."""
    from service.settings import Settings as ServiceSettings

    key = prefix.replace("-", "_")
    models_dir = getattr(args, f"{key}models_dir")
    if models_dir is None:
        return None
    return ServiceSettings(
        models_dir=models_dir,
        emotion_bundle=getattr(args, f"{key}emotion_bundle"),
        information_bundle=getattr(args, f"{key}information_bundle"),
    )


def reported_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command handler: a bad input (table, config, bundle, value) prints one ``error:`` line, exit 2."""
    from service.bundle import BundleError
    from training.config import ConfigError
    from training.runner import PipelineError
    from training.tables import TableError

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (BundleError, ConfigError, PipelineError, TableError, FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return wrapped
