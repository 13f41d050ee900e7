"""The model contract: what a model can do beyond training and sampling is declared on its
class (``capabilities``), and the declaration and the methods agree."""
import pytest

from gentk.models import MODELS, model_class
from gentk.models.base import CAPABILITIES, GenerativeModel


@pytest.mark.parametrize("name", sorted(MODELS))
def test_declared_capabilities_match_the_methods(name):
    cls = model_class(name)
    assert cls.capabilities <= set(CAPABILITIES), f"{name}: unknown {set(cls.capabilities) - set(CAPABILITIES)}"
    for capability, methods in CAPABILITIES.items():
        for method in methods:
            has = callable(getattr(cls, method, None)) and getattr(cls, method) is not getattr(GenerativeModel, method,
                                                                                                 None)
            assert has == cls.can(capability), (
                f"{name}: {'declares' if cls.can(capability) else 'does not declare'} {capability!r} but "
                f"{'lacks' if not has else 'has'} {method}()")


def test_every_capability_is_used_by_a_model():
    assert set().union(*(model_class(name).capabilities for name in MODELS)) == set(CAPABILITIES)


def test_an_unknown_capability_is_refused():
    with pytest.raises(ValueError, match="unknown model capability 'travese'; choose one of elbo"):
        model_class("vae").can("travese")
