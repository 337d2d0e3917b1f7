"""The model families' own parameter sections (``plr``, ``tabm``) and which family uses which section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from deep_learning_workflow.parameters import Parameters

ARCHITECTURES = ("mlp", "plr_mlp", "tabm")


class PeriodicEmbeddingParams(Parameters):
    """Periodic (PLR) embeddings of each numeric column: cos/sin of learned frequencies, linear map, ReLU."""

    frequencies: int = Field(24, ge=1, le=128, description="k learned frequencies per column")
    sigma: float = Field(
        0.1, gt=0.0, le=100.0, description="Std of the frequencies' normal initialisation"
    )
    embedding_dim: int = Field(16, ge=1, le=256, description="d values per column")
    lite: bool = Field(False, description="One linear map shared by the columns (PLR-lite)")


class TabMParams(Parameters):
    """k implicit MLPs sharing their weights, each with its own adapters and output layer; probabilities averaged."""

    members: int = Field(16, ge=2, le=64, description="k members")
    numeric_embedding: Literal["plr", "none"] = Field(
        "none", description="plr: the numeric columns go through params:modelling.plr first"
    )


# The parameter sections that belong to one family and the families they belong to.
FAMILY_SECTIONS = {"plr": ("plr_mlp", "tabm"), "tabm": ("tabm",)}


def section_used(section: str, architecture: str, numeric_embedding: str = "none") -> bool:
    """Whether a family section (``plr``, ``tabm``) is used by ``architecture`` (and ``tabm.numeric_embedding``)."""
    if section == "plr":
        return architecture == "plr_mlp" or (architecture == "tabm" and numeric_embedding == "plr")
    return architecture in FAMILY_SECTIONS.get(section, ARCHITECTURES)


def _choices(modelling: Mapping[str, Any]) -> tuple[str, str]:
    tabm = modelling.get("tabm") or {}
    return str(modelling.get("architecture", "mlp")), str(tabm.get("numeric_embedding", "none"))


def key_used(path: str, modelling: Mapping[str, Any]) -> bool:
    """Whether a (dotted) key of ``params:modelling`` is used by the family its dictionary chooses."""
    section = path.split(".", 1)[0]
    return section not in FAMILY_SECTIONS or section_used(section, *_choices(modelling))


def without_unused_sections(modelling: Mapping[str, Any]) -> dict[str, Any]:
    """A ``params:modelling`` dictionary without the family sections its architecture does not use."""
    return {key: value for key, value in modelling.items() if key_used(key, modelling)}


def family_of(path: str, modelling: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides that choose a family using the (dotted) key ``path``; empty when the current one does."""
    section = path.split(".", 1)[0]
    if section not in FAMILY_SECTIONS or key_used(path, modelling):
        return {}
    return {"architecture": FAMILY_SECTIONS[section][0]}
