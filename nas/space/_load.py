"""Reading search spaces from YAML, with errors that name the file, the field and what is allowed."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nas.errors import NasError, quoted
from nas.space._arch import Ffn, Layer, Mixer, Op
from nas.space._base import SearchSpace, allowed
from nas.space._choice import ChoiceSpace
from nas.space._kinds import kind_names, kinds
from nas.space._net import BlockSettings, NetSpace, StageSpec, Task, layer_cost

_PACKAGE_DIR = Path(__file__).resolve().parent.parent

# Bounds that keep a space buildable on one machine: beyond them a YAML typo asks torch for
# hundreds of GB, or a loop over the space for ever.
MAX_YAML_BYTES = 1_000_000
MAX_VALUE = 4096  # any width, kind field, channel count or input dimension
MAX_DEPTH = 64  # layers per stage
MAX_STAGES = 16
MAX_FIELD = {"kernel": 63, "heads": 256, "state": 1024, "expand": 16, "ratio": 16, "experts": 64,
             "top_k": 64}  # per kind field, where 4096 is still far too much
MAX_LAYER_COST = 500_000_000  # summed per-token MACs of the costliest layers (about the supernet's weights)
MAX_CHOICE_VALUES = 1_000_000  # values of one integer range of a plain space
RECIPE_KEYS = ("epochs", "batch_size", "lr", "limit", "random_subnets")


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases: a space has no use for them, and nested
    aliases expand a file of a few hundred bytes into gigabytes (a "billion laughs")."""

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a search space",
                                              event.start_mark)
        return super().compose_node(parent, index)



def spaces_dir() -> Path:
    """Where the shipped spaces live: inside the wheel, or ``search_spaces/`` of a source tree."""
    for candidate in (_PACKAGE_DIR / "_data" / "search_spaces", _PACKAGE_DIR.parent / "search_spaces"):
        if candidate.is_dir():
            return candidate
    raise NasError("the shipped search spaces are missing from this installation")


def shipped_spaces() -> list[str]:
    return sorted(p.stem for p in spaces_dir().glob("*.yaml"))


def space_ref(space: SearchSpace, hint: str | None = None) -> str:
    """How a command the user is told to run should name ``space``: ``hint`` (what they typed),
    else the name or path it was loaded by, else its name when it is a shipped space, else a
    placeholder for the YAML file of their own space."""
    if hint or space.ref:
        return hint or space.ref
    return space.name if space.name in shipped_spaces() else f"<{space.name}.yaml>"


def load(name_or_path: str | Path) -> SearchSpace:
    """Load a shipped space by name (``hybrid-vision``) or any space from a YAML path."""
    text_name = str(name_or_path)
    path = Path(text_name)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = spaces_dir() / f"{text_name}.yaml"
        if not path.exists():
            raise NasError(
                f"unknown search space {text_name!r} (shipped: {allowed(shipped_spaces())}; or give a path to a YAML file)"
            )
    if not path.is_file():
        raise NasError(f"search space file {str(path)!r} does not exist")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise NasError(f"search space file {str(path)!r} is larger than {MAX_YAML_BYTES:,} bytes: not a search space")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NasError(f"cannot read search space file {str(path)!r}: {exc}") from None
    space = loads(text, source=str(path))
    space.ref = text_name  # hints name the space the way the user did
    return space


def loads(text: str, source: str = "<string>") -> SearchSpace:
    """Build a space from YAML text; ``source`` names it in error messages."""
    if len(text) > MAX_YAML_BYTES:
        raise NasError(f"{source}: a search space of {len(text):,} characters is too long (at most {MAX_YAML_BYTES:,})")
    if any(c in text for c in "\x00"):
        raise NasError(f"{source}: a search space is text: it holds a NUL character")
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise NasError(f"{source}{where}: YAML syntax error: {problem}") from None
    except RecursionError:
        raise NasError(f"{source}: YAML nested too deeply to be a search space") from None
    return _Reader(source).space(data, text)


class _Reader:
    """Walks the YAML tree, keeping the path of the field in hand for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, message: str) -> NasError:
        if len(message) > 300:  # messages quote the value: a long one is cut, never printed whole
            message = message[:300] + "..."
        return NasError(f"{self.source}: field {quoted(field, 120)}: {message}")

    def mapping(self, data: Any, field: str, allowed_keys: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(data, dict):
            raise self.fail(field, f"expected a mapping with keys {allowed(allowed_keys)}")
        for key in data:
            if key not in allowed_keys:
                raise self.fail(f"{field}.{key}" if field else str(key), f"unknown key (allowed: {allowed(allowed_keys)})")
        for key in required:
            if key not in data:
                raise self.fail(f"{field}.{key}" if field else key, "is required")
        return data

    def int_list(self, data: Any, field: str, minimum: int = 1, maximum: int = MAX_VALUE) -> tuple[int, ...]:
        values = data if isinstance(data, list) else [data]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise self.fail(field, f"expected an integer or a list of integers, got {quoted(data)}")
        if any(v < minimum for v in values):
            raise self.fail(field, f"values must be at least {minimum}, got {quoted(data)}")
        if any(v > maximum for v in values):
            raise self.fail(field, f"values must be at most {maximum}, got {quoted(data)}")
        if len(set(values)) != len(values):
            raise self.fail(field, f"values repeat: {quoted(data)}")
        return tuple(sorted(values))

    def positive_int(self, data: Any, field: str, maximum: int = MAX_VALUE) -> int:
        if not isinstance(data, int) or isinstance(data, bool) or data < 1:
            raise self.fail(field, f"expected a positive integer, got {quoted(data)}")
        if data > maximum:
            raise self.fail(field, f"must be at most {maximum}, got {data}")
        return data

    def space(self, data: Any, text: str) -> SearchSpace:
        if not isinstance(data, dict):
            raise NasError(f"{self.source}: a search space must be a YAML mapping")
        kind = data.get("kind", "net")
        if kind == "choice":
            return self.choice_space(data, text)
        if kind != "net":
            raise self.fail("kind", f"{kind!r} is not allowed (allowed: net, choice)")
        return self.net_space(data, text)

    def name(self, data: dict) -> str:
        name = data.get("name")
        if (not isinstance(name, str) or not name or len(name) > 100 or not name.isprintable()
                or any(c in name for c in "/\\ ")):
            raise self.fail("name", f"expected a name of at most 100 printable characters without spaces or slashes, "
                                    f"got {quoted(name)}")
        return name

    def choice_space(self, data: dict, text: str) -> ChoiceSpace:
        self.mapping(data, "", ("name", "kind", "description", "choices"), required=("name", "choices"))
        choices_data = data["choices"]
        if not isinstance(choices_data, dict) or not choices_data:
            raise self.fail("choices", "expected a non-empty mapping of NAME: [values] or NAME: {low, high, step}")
        choices: dict[str, tuple[Any, ...]] = {}
        for key, spec in choices_data.items():
            field = f"choices.{key}"
            if not isinstance(key, str) or not key.isidentifier():
                raise self.fail(field, "choice names must be identifiers")
            if isinstance(spec, dict):
                self.mapping(spec, field, ("low", "high", "step"), required=("low", "high"))
                low, high = spec["low"], spec["high"]
                step = spec.get("step", 1)
                for f, v in (("low", low), ("high", high)):
                    if not isinstance(v, int) or isinstance(v, bool):
                        raise self.fail(f"{field}.{f}", f"expected an integer, got {v!r}")
                step = self.positive_int(step, f"{field}.step", maximum=10**18)
                if high < low:
                    raise self.fail(field, f"high ({high}) is below low ({low})")
                if (high - low) // step + 1 > MAX_CHOICE_VALUES:
                    raise self.fail(field, f"{low}..{high} in steps of {step} is more than {MAX_CHOICE_VALUES:,} values")
                choices[key] = tuple(range(low, high + 1, step))
            elif isinstance(spec, list) and spec:
                for v in spec:
                    if not isinstance(v, (str, int, float, bool)) or any(c in str(v) for c in ",="):
                        raise self.fail(field, f"values must be scalars without ',' or '=', got {quoted(v)}")
                if len({str(v) for v in spec}) != len(spec):
                    raise self.fail(field, f"values repeat: {spec!r}")
                choices[key] = tuple(spec)
            else:
                raise self.fail(field, "expected a non-empty list of values or {low, high, step}")
        return ChoiceSpace(self.name(data), choices, str(data.get("description", "")), text)

    def net_space(self, data: dict, text: str) -> NetSpace:
        self.mapping(
            data,
            "",
            ("name", "kind", "description", "task", "stem", "blocks", "mixers", "ffns", "stages", "recipe"),
            required=("name", "task", "stages"),
        )
        task = self.task(data["task"])
        is_text = task.kind == "text"
        if is_text and "stem" in data:
            raise self.fail("stem", "a text space has no stem: its tokens are embedded at the first stage's width")
        settings = self.settings(data.get("stem", {}), data.get("blocks", {}))
        if is_text:  # causal blocks, tokens at full length all the way
            settings = replace(settings, causal=True, stem_strides=(1, 1))
        default_mixers = data.get("mixers", {"conv": {"kernel": [3]}})
        default_ffns = data.get("ffns", {"mlp": {"ratio": [2]}})
        stages_data = data["stages"]
        kinds_by_name = {k.name: k for k in kinds()}
        if not isinstance(stages_data, list) or not stages_data:
            raise self.fail("stages", "expected a non-empty list of stages")
        if is_text and len(stages_data) != 1:
            raise self.fail("stages", "a text space has one stage (every layer runs at the width the embedding has); "
                                      "its layers choose their mixers and ffns one by one")
        if len(stages_data) > MAX_STAGES:
            raise self.fail("stages", f"at most {MAX_STAGES} stages, got {len(stages_data)}")
        stages = []
        for i, sd in enumerate(stages_data):
            field = f"stages[{i}]"
            self.mapping(sd, field, ("depth", "width", "mixers", "ffns", "downsample"), required=("depth", "width"))
            downsample = sd.get("downsample", i > 0 and not is_text)
            if not isinstance(downsample, bool):
                raise self.fail(f"{field}.downsample", f"expected true or false, got {downsample!r}")
            if is_text and downsample:
                raise self.fail(f"{field}.downsample", "a text space keeps every token (a causal model): no downsampling")
            stage = StageSpec(
                depths=self.int_list(sd["depth"], f"{field}.depth", maximum=MAX_DEPTH),
                widths=self.int_list(sd["width"], f"{field}.width"),
                mixers=self.mixers(sd.get("mixers", default_mixers), f"{field}.mixers" if "mixers" in sd else "mixers"),
                ffns=self.ffns(sd.get("ffns", default_ffns), f"{field}.ffns" if "ffns" in sd else "ffns"),
                downsample=downsample,
            )
            for w in stage.widths:
                for op in (*stage.mixers, *stage.ffns):
                    problem = kinds_by_name[op.kind].fits(op, w, settings) if kinds_by_name[op.kind].fits else None
                    if problem:
                        raise self.fail(f"{field}.width", problem)
            stages.append(stage)
        cost = sum(max(stage.depths) * max(layer_cost(Layer(m, f), max(stage.widths), settings)
                                           for m in stage.mixers for f in stage.ffns) for stage in stages)
        if cost > MAX_LAYER_COST:
            raise self.fail("stages", f"the largest subnet would have about {cost:,.0f} multiply-accumulates per "
                                      f"token (at most {MAX_LAYER_COST:,}): narrower widths or fewer layers")
        return NetSpace(self.name(data), task, tuple(stages), settings, str(data.get("description", "")), text,
                        self.recipe(data.get("recipe", {})))

    def recipe(self, data: Any) -> dict[str, int | float]:
        """The space's own defaults for ``nas supernet train`` (each option the command leaves out)."""
        self.mapping(data, "recipe", RECIPE_KEYS)
        out: dict[str, int | float] = {}
        for key, value in data.items():
            if key == "lr":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                    raise self.fail("recipe.lr", f"expected a learning rate in (0, 1), got {quoted(value)}")
                out[key] = float(value)
            else:
                out[key] = self.positive_int(value, f"recipe.{key}", maximum=10**9)
        return out

    def task(self, data: Any) -> Task:
        self.mapping(data, "task", ("kind", "dataset", "input_shape", "num_classes"),
                     required=("kind", "dataset", "input_shape", "num_classes"))
        kind = data["kind"]
        if kind not in ("image", "sequence", "text"):
            raise self.fail("task.kind", f"{kind!r} is not allowed (allowed: image, sequence, text)")
        shape = data["input_shape"]
        want = {"image": 3, "sequence": 2, "text": 1}[kind]
        if (
            not isinstance(shape, list)
            or len(shape) != want
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
        ):
            form = {"image": "[C, H, W]", "sequence": "[C, L]", "text": "[CONTEXT] (tokens per window)"}[kind]
            raise self.fail("task.input_shape", f"expected {form} of positive integers, got {quoted(shape)}")
        if max(shape) > MAX_VALUE * 16 or int(np.prod(shape)) > 16_000_000:
            raise self.fail("task.input_shape", f"{shape} is too large an input (at most 16 million values)")
        if not isinstance(data["dataset"], str) or len(data["dataset"]) > 1000:
            raise self.fail("task.dataset", f"expected a dataset name, got {quoted(data['dataset'])}")
        classes = self.positive_int(data["num_classes"], "task.num_classes", maximum=1_000_000)
        if kind == "text" and classes != 256:
            raise self.fail("task.num_classes", f"a text space predicts bytes: num_classes is 256, got {classes}")
        if classes < 2:
            raise self.fail("task.num_classes", "needs at least 2 classes")
        return Task(kind, data["dataset"], tuple(shape), classes)

    def settings(self, stem: Any, blocks: Any) -> BlockSettings:
        self.mapping(stem, "stem", ("channels", "strides"))
        self.mapping(blocks, "blocks", ("attention_head_dim", "ssm_head_dim", "ssm_conv", "moe_ratio", "moe_capacity"))
        d = BlockSettings()
        strides = stem.get("strides", list(d.stem_strides))
        if not isinstance(strides, list) or len(strides) != 2 or not all(s in (1, 2, 4) for s in strides):
            raise self.fail("stem.strides", f"expected two strides from 1, 2, 4, got {strides!r}")
        return BlockSettings(
            attention_head_dim=self.positive_int(blocks.get("attention_head_dim", d.attention_head_dim), "blocks.attention_head_dim"),
            ssm_head_dim=self.positive_int(blocks.get("ssm_head_dim", d.ssm_head_dim), "blocks.ssm_head_dim"),
            ssm_conv=self.positive_int(blocks.get("ssm_conv", d.ssm_conv), "blocks.ssm_conv"),
            moe_ratio=self.positive_int(blocks.get("moe_ratio", d.moe_ratio), "blocks.moe_ratio"),
            moe_capacity=self.capacity(blocks.get("moe_capacity", d.moe_capacity)),
            stem_channels=self.positive_int(stem.get("channels", d.stem_channels), "stem.channels"),
            stem_strides=tuple(strides),
        )

    def capacity(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 16:
            raise self.fail("blocks.moe_capacity", f"expected a capacity factor in (0, 16], got {value!r}")
        return float(value)

    def mixers(self, data: Any, field: str) -> tuple[Mixer, ...]:
        return self.options(data, field, Mixer)  # type: ignore[return-value]

    def ffns(self, data: Any, field: str) -> tuple[Ffn, ...]:
        return self.options(data, field, Ffn)  # type: ignore[return-value]

    def options(self, data: Any, field: str, cls: type[Op]) -> tuple[Op, ...]:
        """Every option of the kinds ``data`` names: the product of each kind's field values,
        less the combinations the kind does not allow (the table in nas.space._kinds)."""
        names = kind_names(cls.role)
        self.mapping(data, field, names)
        if not data:
            raise self.fail(field, f"needs at least one of {allowed(names)}")
        out: list[Op] = []
        for spec in kinds(cls.role):
            if spec.name not in data:
                continue
            where = f"{field}.{spec.name}"
            d = self.mapping(data[spec.name], where, spec.fields, required=spec.fields)
            choices = []
            for f in spec.fields:
                values = self.int_list(d[f], f"{where}.{f}", minimum=spec.minimum.get(f, 1),
                                       maximum=MAX_FIELD.get(f, MAX_VALUE))
                if f in spec.odd and any(v % 2 == 0 for v in values):
                    raise self.fail(f"{where}.{f}", f"{f}s must be odd, got {list(values)}")
                choices.append(values)
            options = [cls.make(spec.name, combo) for combo in itertools.product(*choices)]
            options = [op for op in options if spec.allows is None or spec.allows(op)]
            if not options:
                raise self.fail(where, f"no combination of {', '.join(spec.fields)} is allowed")
            out += options
        return tuple(out)
