from __future__ import annotations

import pytest
import torch

from bench.data import DATASETS
from bench.models import MODELS, Normalize, count_parameters, create_model, register_model
from bench.paper import check_compatible, compatible_architectures


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("dataset", ["mnist", "cifar10", "cifar100"])
def test_every_architecture_builds_for_every_shape(arch, dataset):
    info = DATASETS[dataset]
    model = create_model(arch, info).eval()
    out = model(torch.rand(2, *info.shape))
    assert out.shape == (2, info.num_classes)
    assert isinstance(model[0], Normalize)


def test_parameter_counts_of_the_cited_code():
    # Counts of the original implementations (see the README's table for the paper's figures).
    assert count_parameters(create_model("convnet", DATASETS["mnist"])) == 1_199_882
    assert count_parameters(create_model("resnet18", DATASETS["cifar10"])) == 11_173_962
    assert count_parameters(create_model("cifar_resnet110", DATASETS["cifar10"])) == 1_730_714


def test_normalisation_is_embedded():
    info = DATASETS["cifar10"]
    norm = create_model("cnn7", info)[0]
    x = torch.rand(3, *info.shape)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    assert torch.allclose(norm(x), (x - mean) / std)
    assert "0.mean" in create_model("cnn7", info).state_dict()


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="known: .*convnet"):
        create_model("vgg16", DATASETS["mnist"])


def test_register_model_rejects_duplicates():
    with pytest.raises(ValueError, match="twice"):
        register_model("convnet")(lambda c, s, k: torch.nn.Identity())


def test_table_7_compatibility_is_data():
    assert compatible_architectures("ibp") == ["wrn8", "cnn7", "convnet"]
    assert compatible_architectures("rs") == ["cifar_resnet110", "convnet"]
    assert set(compatible_architectures("ours")) == set(MODELS)
    with pytest.raises(ValueError, match="can train: wrn8, cnn7, convnet"):
        check_compatible("ibp", "resnet18")


@pytest.mark.parametrize("arch", ["convnet", "cnn7", "resnet18", "wrn8", "cifar_resnet110"])
def test_in_place_relus_change_no_number(arch):
    """The architectures' ReLUs work in place (Basic ConvNet inference 1.4× faster on one CPU
    thread): outputs and every gradient equal those of the same weights with out-of-place ReLUs."""
    import copy

    torch.manual_seed(0)
    info = DATASETS["cifar10" if arch in ("resnet18", "wrn8", "cifar_resnet110") else "fashion_mnist"]
    model = create_model(arch, info)
    assert any(isinstance(m, torch.nn.ReLU) and m.inplace for m in model.modules())
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    x = torch.rand(4, info.channels, info.image_size, info.image_size)
    y = torch.tensor([0, 1, 2, 3])
    model.eval(), plain.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), plain(x))
    model.train(), plain.train()
    grads = []
    for m in (model, plain):
        torch.manual_seed(1)  # the same dropout masks
        xi = x.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(m(xi), y).backward()
        grads.append([xi.grad, *(p.grad for p in m.parameters())])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
