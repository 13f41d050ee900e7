"""The table of ops per backend (gentk/ops/table.py), and the Triton twins' schemas: each
``gentk::X_triton`` has the schema of the compiled ``gentk::X``, for every op of the four
families, forward and backward."""
import pytest
import torch

import gentk
from gentk.ops.table import kernels

pytestmark = pytest.mark.skipif(not gentk.extension_available(), reason="gentk._C not built")


def test_both_tables_name_the_same_ops():
    pytest.importorskip("triton")
    compiled, twins = kernels("cpp"), kernels("triton")
    assert kernels("cuda") is compiled and set(twins) == set(compiled)
    for name, op in compiled.items():
        assert op._qualified_op_name == f"gentk::{name}"
        assert twins[name]._qualified_op_name == f"gentk::{name}_triton"


def _plain(schema):
    # torch.library.triton_op infers its schema from the annotations (a Python int is SymInt)
    # and, in torch 2.13, ignores one given to it; int and SymInt take the same arguments.
    return str(schema).replace("SymInt ", "int ")


def test_every_triton_twin_has_the_compiled_schema():
    pytest.importorskip("triton")
    kernels("triton")  # registers the twins
    twins = sorted(n for n in torch._C._dispatch_get_all_op_names() if n.startswith("gentk::") and n.endswith("_triton"))
    families = {"reparameterize", "gumbel_softmax", "instance_norm", "discriminator_loss"}
    assert families <= {n[len("gentk::"):-len("_triton")] for n in twins}
    for twin in twins:
        name = twin[len("gentk::"):-len("_triton")]
        compiled = _plain(getattr(torch.ops.gentk, name).default._schema)
        triton_ = _plain(getattr(torch.ops.gentk, f"{name}_triton").default._schema)
        assert triton_ == compiled.replace(f"gentk::{name}(", f"gentk::{name}_triton("), name
