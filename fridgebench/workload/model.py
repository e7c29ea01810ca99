"""Scenario files (TOML) -> a validated, immutable :class:`Scenario`.

A malformed file is reported as one line naming the file, the field and what is allowed.
Scenario files live in ``scenarios/``; ``docs`` for each field are in scenarios/README.md.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fridgebench.errors import ScenarioError, UsageError

OP_KINDS = ("create", "get", "add", "remove", "extend", "delete", "recipe")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Population(_Strict):
    sessions: int = Field(10_000, ge=1, le=50_000_000, description="live sessions loaded before the run")
    ingredients: tuple[int, int] = Field((0, 12), description="[min, max] ingredients per loaded session")

    @model_validator(mode="after")
    def _range(self) -> "Population":
        lo, hi = self.ingredients
        if not 0 <= lo <= hi <= 100:
            raise ValueError("ingredients must be [min, max] with 0 <= min <= max <= 100")
        return self


class Keys(_Strict):
    distribution: Literal["uniform", "zipfian", "latest"] = "zipfian"
    zipf_s: float = Field(0.99, gt=0, le=5, description="zipf exponent for zipfian/latest")


class Mix(_Strict):
    """Relative weights of operations (need not sum to 100)."""

    create: float = Field(0, ge=0)
    get: float = Field(0, ge=0)
    add: float = Field(0, ge=0)
    remove: float = Field(0, ge=0)
    extend: float = Field(0, ge=0)
    delete: float = Field(0, ge=0)
    recipe: float = Field(0, ge=0)

    @model_validator(mode="after")
    def _some(self) -> "Mix":
        if sum(self.weights().values()) <= 0:
            raise ValueError(f"at least one weight must be > 0 (operations: {', '.join(OP_KINDS)})")
        return self

    def weights(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in OP_KINDS}


class IngredientCounts(_Strict):
    per_add: tuple[int, int] = Field((1, 3), description="[min, max] ingredients per add")
    per_remove: tuple[int, int] = Field((1, 1), description="[min, max] ingredients per remove")

    @model_validator(mode="after")
    def _ranges(self) -> "IngredientCounts":
        for name in ("per_add", "per_remove"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi <= 50:
                raise ValueError(f"{name} must be [min, max] with 1 <= min <= max <= 50")
        return self


class Load(_Strict):
    model: Literal["open", "closed"] = "open"
    rate: float | None = Field(None, gt=0, le=1_000_000, description="open loop: arrivals per second")
    arrival: Literal["constant", "poisson"] = "poisson"
    concurrency: int = Field(32, ge=1, le=1024, description="closed: workers; open: max in flight (connections)")
    warmup_seconds: float = Field(3, ge=0, le=3600)
    duration_seconds: float = Field(15, gt=0, le=86_400)

    @model_validator(mode="after")
    def _rate(self) -> "Load":
        if self.model == "open" and self.rate is None:
            raise ValueError("an open-loop load needs rate (operations per second)")
        return self


class Scenario(_Strict):
    name: str
    description: str = ""
    seed: int = 42
    ttl_seconds: int = Field(86_400, ge=1, le=30 * 86_400)
    population: Population = Population()
    keys: Keys = Keys()
    mix: Mix
    ingredients: IngredientCounts = IngredientCounts()
    load: Load
    source: str = Field("", description="where it was read from (set by the loader)")

    def with_overrides(self, changes: Mapping[str, Any] | None = None, *, flags: Mapping[str, str] | None = None,
                       **more: Any) -> "Scenario":
        """Return a copy with dotted overrides applied and re-validated, e.g. {"load.rate": 500}.

        ``flags`` names the command-line option behind an override (``{"load.duration_seconds":
        "--duration"}``): a value it refuses is reported as that flag's, not as the scenario file's."""
        data = self.model_dump()
        given = {k: v for k, v in {**(changes or {}), **more}.items() if v is not None}
        for dotted, value in given.items():
            node = data
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        named = {field: (flag, given[field]) for field, flag in (flags or {}).items() if field in given}
        return _validate(data, self.source or self.name, named)


def _loc(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after")) or "(top level)"


def _validate(data: dict[str, Any], source: str, flags: Mapping[str, tuple[str, Any]] | None = None) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _loc(err)
        if flags and field in flags:  # the value came from a flag: name the flag, not the file
            flag, value = flags[field]
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            why = err["msg"].removeprefix("Value error, ").removeprefix("Input ")
            raise UsageError(f"{flag} {shown}: {why}",
                             hint=f"the flag overrides {field} of scenario {Path(source).stem}") from None
        if err["type"] == "extra_forbidden":
            parent = err["loc"][:-1]
            model: Any = Scenario
            for p in parent:
                model = model.model_fields[str(p)].annotation
            allowed = ", ".join(k for k in model.model_fields if k != "source")
            msg = f"unknown field '{field}' (allowed here: {allowed})"
        elif err["type"] == "missing":
            msg = f"missing required field '{field}'"
        else:
            msg = f"field '{field}': {err['msg'].removeprefix('Value error, ')}"
            if "input" in err and not isinstance(err["input"], dict):
                msg += f" (got {err['input']!r})"
        raise ScenarioError(f"{source}: {msg}") from None


def scenario_dirs() -> list[Path]:
    """Where scenario names are looked up: ./scenarios, then the project's bundled scenarios/."""
    here = Path(__file__).resolve().parents[2] / "scenarios"
    dirs = [Path.cwd() / "scenarios", here]
    return [d for i, d in enumerate(dirs) if d not in dirs[:i]]


def list_scenarios() -> list[str]:
    names: list[str] = []
    for d in scenario_dirs():
        if d.is_dir():
            names += [p.stem for p in sorted(d.glob("*.toml")) if p.stem not in names]
    return names


def resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise ScenarioError(f"no scenario file at {p}", hint=f"known scenarios: {', '.join(list_scenarios())}")
        return p
    for d in scenario_dirs():
        cand = d / f"{name_or_path}.toml"
        if cand.is_file():
            return cand
    raise ScenarioError(f"unknown scenario '{name_or_path}'", hint=f"known scenarios: {', '.join(list_scenarios())}")


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: not valid TOML ({err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(f"{path}: cannot read ({err})") from None
    data.setdefault("name", path.stem)
    data["source"] = str(path)
    return _validate(data, str(path))
