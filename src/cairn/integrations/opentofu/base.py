"""What every resource and data source of the provider shares: schemas built from short declarations,
the turn of an :class:`ApiError` into a diagnostic on the attribute it was about, import ids, and the
rule for optional attributes.

The ``tf`` framework calls a resource's ``create``/``read``/``update``/``delete``/``import_`` with the
state as a dict of attribute values. A ``read`` that answers None tells OpenTofu the object is gone,
so the next plan creates it again rather than failing. An optional attribute left out of the
configuration is null in the state; when the server holds its default value (an empty description, no
tags), ``read`` keeps it null, and when someone set it by hand the plan shows the drift and puts it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from tf import schema as tfs
from tf.iface import _validate_config
from tf.types import Unknown
from tf.utils import Diagnostics

from cairn.integrations.opentofu.api import Api, ApiError
from cairn.integrations.opentofu.kinds import STRING

if TYPE_CHECKING:
    from cairn.integrations.opentofu.provider import CairnProvider

State = dict[str, Any]


def attr(name: str, kind: Any, description: str, **flags: Any) -> tfs.Attribute:
    return tfs.Attribute(name, kind, description=description, **flags)


def known(value: Any) -> bool:
    return value is not None and value is not Unknown


def keep_null(prior: Any, value: Any, default: Any) -> Any:
    """An optional attribute the configuration leaves out stays null while the server has its default."""
    return None if prior is None and value == default else value


def split_id(import_id: str, parts: int, shape: str) -> list[str]:
    """``a/b/c`` into its parts; the last part may not hold '/' but model names never do."""
    found = import_id.split("/")
    if len(found) != parts or not all(found):
        raise ValueError(f"the import id {import_id!r} must look like {shape}")
    return found


class Base:
    """Declarations a subclass gives: ``type_name`` (after ``cairn_``), ``attributes``, ``fields`` (the
    server's field names that differ from the attribute names) and ``what`` (for messages)."""

    type_name: ClassVar[str]
    what: ClassVar[str]
    description: ClassVar[str] = ""
    attributes: ClassVar[list[tfs.Attribute]]
    fields: ClassVar[dict[str, str]] = {}
    volatile: ClassVar[tuple[str, ...]] = ()  # computed attributes an update may change (unknown in its plan)
    import_keys: ClassVar[tuple[str, ...]] = ()  # the attributes an import id names, '/' between them
    import_shape: ClassVar[str] = ""  # how an import id looks, for messages

    def __init__(self, provider: CairnProvider) -> None:
        self.provider = provider

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A resource's ``id`` attribute comes from its import shape, one declaration of what an id looks like;
        so does its ``workspace`` attribute, which a resource has when its id starts with its workspace."""
        super().__init_subclass__(**kwargs)
        if cls.import_shape and "attributes" in cls.__dict__:
            scoped = [workspace_attribute()] if cls.import_shape.startswith("<workspace>/") else []
            cls.attributes = [id_attribute(cls.import_shape), *scoped, *cls.attributes]

    @classmethod
    def get_name(cls) -> str:
        return cls.type_name

    @classmethod
    def get_schema(cls) -> tfs.Schema:
        return tfs.Schema(version=1, attributes=cls.attributes, description=cls.description)

    @property
    def api(self) -> Api:
        return self.provider.api()

    def workspace(self, state: State) -> str:
        """The resource's workspace: its own attribute, else the provider's default."""
        value = state.get("workspace")
        return str(value) if known(value) else self.provider.workspace

    def validate(self, diags: Diagnostics, type_name: str, config: State) -> None:
        _validate_config(diags, type_name, config, self.attributes, [])
        for name, message in self.check(config):
            diags.add_error(f"Invalid {name}", message, path=[name])

    def plan(self, ctx: Any, current: State | None, planned: State) -> State:
        """The framework's plan: reach what the configuration says (``requires_replace`` marks replaces);
        computed values an update may change are unknown until it is applied."""
        if current is not None and ctx.changed_fields:
            planned.update(dict.fromkeys(self.volatile, Unknown))
        return planned

    def upgrade(self, ctx: Any, version: int, old: State) -> State:
        """State written by an older schema version: every version so far reads the same."""
        return old

    def check(self, config: State) -> list[tuple[str, str]]:
        """Problems visible in the configuration alone, as (attribute, message). Only shape is checked
        here (which attributes go together); what values are valid is the server's to say."""
        return []

    def full(self, values: State) -> State:
        """A state with every attribute of the schema (missing ones null)."""
        return {a.name: values.get(a.name) for a in self.attributes}

    def report(self, diags: Diagnostics, doing: str, exc: ApiError) -> None:
        """A server refusal as an error diagnostic pointing at the attribute the server named."""
        names = {a.name for a in self.attributes}
        path = self.fields.get(exc.field or "", exc.field)
        where = [path] if path in names else None
        status = f" (HTTP {exc.status})" if exc.status else ""
        detail = exc.message or "no details"
        if exc.code == "RESOURCE_ALREADY_EXISTS" and doing == "create":
            detail += f"; to manage the existing one, import it (tofu import cairn_{self.type_name}.<name> <id>)"
        diags.add_error(f"Cairn could not {doing} {self.what}{status}", detail, path=where)

    def found(self, current: State) -> State | None:
        """The object ``current`` names as the server has it now; None if it is gone."""
        raise NotImplementedError

    def read(self, ctx: Any, current: State) -> State | None:
        return self.attempt(ctx.diagnostics, "read", lambda: self.found(current))

    def import_(self, ctx: Any, import_id: str) -> State | None:
        def find() -> State | None:
            keys = self.import_keys
            parts = [import_id] if len(keys) == 1 else split_id(import_id, len(keys), self.import_shape)
            return self.found(dict(zip(keys, parts, strict=True)))
        return imported(self, ctx, import_id, find)

    def attempt(self, diags: Diagnostics, doing: str, action: Callable[[], State | None]) -> State | None:
        try:
            return action()
        except ApiError as exc:
            self.report(diags, doing, exc)
            return None


def imported(resource: Base, ctx: Any, import_id: str, find: Callable[[], State | None]) -> State | None:
    """Import: a malformed id or an object that does not exist is an error, not an empty import."""
    try:
        found = resource.attempt(ctx.diagnostics, "import", find)
    except ValueError as exc:
        ctx.diagnostics.add_error(f"Cannot import {resource.what}", str(exc))
        return None
    if found is None and not ctx.diagnostics.has_errors():
        ctx.diagnostics.add_error(f"Cannot import {resource.what}", f"nothing in Cairn has the id {import_id!r}")
    return found


def requires_exactly_one(config: State, names: tuple[str, str]) -> list[tuple[str, str]]:
    """``user`` or ``team``, ``alias`` or ``version``: one of the two must be set (unknown counts as set)."""
    given = [n for n in names if config.get(n) is not None]
    if len(given) != 1:
        return [(names[0], f"set exactly one of {names[0]} or {names[1]}")]
    return []


def workspace_attribute() -> tfs.Attribute:
    return attr("workspace", STRING, "The workspace; the provider's `workspace` when left out.", optional=True,
                computed=True, requires_replace=True)


def id_attribute(shape: str) -> tfs.Attribute:
    return attr("id", STRING, f"The import id: `{shape}`.", computed=True)
