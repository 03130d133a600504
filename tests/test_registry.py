"""Every registry is one :class:`bench.registry.Registry`: one error style, one mapping view."""
import pytest

from bench.certification.sequential import PROCEDURES, make_test
from bench.data import DATASETS, dataset_info
from bench.evaluation.attacks import ATTACKS, make_attack
from bench.models import MODELS, create_model
from bench.paper.claims import CLAIMS
from bench.registry import Registry, UnknownKey
from bench.tables import TABLES, get_table
from bench.training import METHODS, get_method
from bench.workflow.job_kinds import JOB_KINDS

REGISTRIES = {"method": METHODS, "model": MODELS, "dataset": DATASETS, "procedure": PROCEDURES,
              "attack": ATTACKS, "table": TABLES, "job kind": JOB_KINDS, "claim": CLAIMS}


@pytest.mark.parametrize("what", REGISTRIES)
def test_every_registry_is_one_style(what):
    registry = REGISTRIES[what]
    assert isinstance(registry, Registry) and registry.what == what
    with pytest.raises(ValueError, match=f"^unknown {what} 'nope'; known: "):
        registry["nope"]
    assert registry.get("nope") is None  # a mapping's get, as a dict's


@pytest.mark.parametrize("lookup", [
    lambda: get_method("nope"), lambda: create_model("nope", dataset_info("mnist")), lambda: dataset_info("nope"),
    lambda: make_test("nope", 0.1, 0.01, 1000), lambda: make_attack("nope", None, None), lambda: get_table("nope"),
])
def test_the_public_lookups_name_the_known_keys(lookup):
    with pytest.raises(UnknownKey, match="unknown .* 'nope'; known: "):
        lookup()


def test_add_refuses_another_object_under_a_key_and_remove_undoes_add():
    registry = Registry("thing")
    registry.add("a", 1)
    registry.add("a", 1)  # the same object again: a module imported twice
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        registry.add("a", 2)
    registry.add("a", 2, replace=True)
    assert dict(registry) == {"a": 2} and registry.remove("a") == 2 and "a" not in registry


def test_one_definition_imported_twice_is_not_a_second_registration():
    def make():
        class Twin:
            pass
        return Twin
    registry = Registry("class")
    registry.add("t", make())
    registry.add("t", make())  # same module and qualified name: a plugin loaded again
