from __future__ import annotations

import pytest
import torch
from conftest import make_cifar_like, make_mnist_like, make_svhn_like

from bench import data as bdata
from bench.data import staging


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_format_loads_through_torchvision(tiny_root, name, folder):
    arrays = make_mnist_like(tiny_root, folder, n_train=50, n_test=20)
    test = bdata.load_split(name, "test", tiny_root, download=False)
    images, labels = arrays["t10k"]
    assert test.images.shape == (20, 1, 28, 28) and test.images.dtype == torch.float32
    assert torch.equal(test.images, torch.from_numpy(images).float().unsqueeze(1) / 255)
    assert torch.equal(test.labels, torch.from_numpy(labels).long())
    train = bdata.load_split(name, "train", tiny_root, download=False)
    val = bdata.load_split(name, "val", tiny_root, download=False)
    assert (len(train), len(val)) == (40, 10)
    # train and validation partition the training file
    all_train = torch.from_numpy(arrays["train"][0]).float().unsqueeze(1) / 255
    got = torch.cat([train.images, val.images]).flatten(1)
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, all_train.flatten(1).tolist()))


@pytest.mark.parametrize("classes,name", [(10, "cifar10"), (100, "cifar100")])
def test_cifar_pickled_batches_load(tiny_root, classes, name):
    written = make_cifar_like(tiny_root, classes, n_per_file=12)
    test = bdata.load_split(name, "test", tiny_root, download=False, verify_checksums=False)
    data, labels = written["test_batch" if classes == 10 else "test"]
    assert test.images.shape == (12, 3, 32, 32)
    expected = torch.from_numpy(data).view(12, 3, 32, 32).float() / 255
    assert torch.equal(test.images, expected)
    assert test.labels.tolist() == [int(v) for v in labels]
    n_train = 5 * 12 if classes == 10 else 12
    train = bdata.load_split(name, "train", tiny_root, download=False, verify_checksums=False)
    assert len(train) == round(0.8 * n_train)


def test_cifar_checksums_are_verified_by_default(tiny_root):
    make_cifar_like(tiny_root, 10, n_per_file=4)
    with pytest.raises(bdata.DatasetNotFoundError, match="cifar10"):
        bdata.load_split("cifar10", "test", tiny_root, download=False)


def test_svhn_mat_files_load(tiny_root):
    arrays = make_svhn_like(tiny_root, n_train=30, n_test=10)
    test = bdata.load_split("svhn", "test", tiny_root, download=False, verify_checksums=False)
    X, y = arrays["test"]
    assert test.images.shape == (10, 3, 32, 32)
    assert torch.equal(test.images, torch.from_numpy(X).permute(3, 2, 0, 1).float() / 255)
    assert test.labels.tolist() == [int(v) % 10 for v in y.ravel()]  # label 10 is digit 0
    assert len(bdata.load_split("svhn", "train", tiny_root, download=False, verify_checksums=False)) == 24


def test_split_sizes_match_table_6():
    for n, (tr, va) in {60_000: (48_000, 12_000), 73_257: (58_606, 14_651), 50_000: (40_000, 10_000)}.items():
        train, val = bdata.split_indices(n, seed=0)
        assert (len(train), len(val)) == (tr, va)
        assert len(torch.unique(torch.cat([train, val]))) == n


def test_split_is_seeded():
    a, _ = bdata.split_indices(1000, seed=3)
    b, _ = bdata.split_indices(1000, seed=3)
    c, _ = bdata.split_indices(1000, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stratified_subset_takes_first_k_per_class_in_order():
    labels = torch.tensor([2, 0, 2, 1, 0, 2, 1, 0, 1, 2])
    keep = bdata.stratified_subset(labels, 2)
    assert keep.tolist() == [0, 1, 2, 3, 4, 6]
    assert bdata.stratified_subset(labels, 10).tolist() == list(range(10))


def test_missing_dataset_names_dataset_path_and_command(tiny_root):
    with pytest.raises(bdata.DatasetNotFoundError) as err:
        bdata.load_split("cifar10", "test", tiny_root, download=False)
    msg = str(err.value)
    assert "cifar10" in msg and str(tiny_root) in msg and "bench data fetch cifar10" in msg


def test_unknown_names_list_known_ones(tiny_root):
    with pytest.raises(ValueError, match="known: mnist, fashion_mnist, svhn, cifar10, cifar100"):
        bdata.load_split("imagenet", "test", tiny_root)
    with pytest.raises(ValueError, match="known: train, val, test"):
        bdata.load_split("mnist", "dev", tiny_root)


def test_batches_are_tensor_slices_covering_the_split(tiny_root):
    make_mnist_like(tiny_root, "MNIST", n_train=10, n_test=25)
    test = bdata.load_split("mnist", "test", tiny_root, download=False)
    batches = list(test.batches(10))
    assert [len(y) for _, y in batches] == [10, 10, 5]
    shuffled = list(test.batches(10, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert sorted(torch.cat([y for _, y in shuffled]).tolist()) == sorted(test.labels.tolist())


@pytest.mark.skipif(not bdata.DEBIAN_FASHION_MNIST.exists(),
                    reason="needs the Debian package dataset-fashion-mnist (make test installs it)")
def test_real_fashion_mnist_from_debian_package(tmp_path):
    train = bdata.load_split("fashion_mnist", "train", tmp_path)
    val = bdata.load_split("fashion_mnist", "val", tmp_path)
    test = bdata.load_split("fashion_mnist", "test", tmp_path)
    assert (len(train), len(val), len(test)) == (48_000, 12_000, 10_000)
    assert len(train) + len(val) == 60_000
    assert train.images.shape[1:] == (1, 28, 28)
    assert 0.0 == float(test.images.min()) and float(test.images.max()) == 1.0
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 1000))


@pytest.mark.skipif(not bdata.DEBIAN_FASHION_MNIST.exists(),
                    reason="needs the Debian package dataset-fashion-mnist (make test installs it)")
def test_concurrent_staging_of_the_debian_files_is_safe(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(lambda _: staging.stage_debian_fashion_mnist(tmp_path), range(4)))
    raw = tmp_path / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted([
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"])
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 16 + 60_000 * 28 * 28


def test_decoded_cache_is_used_and_invalidated_by_changed_files(tiny_root):
    make_mnist_like(tiny_root, "MNIST", n_train=20, n_test=10)
    first = bdata.load_split("mnist", "test", tiny_root, download=False)
    cache = tiny_root / ".cache" / "mnist_test.safetensors"
    assert cache.exists()
    again = bdata.load_split("mnist", "test", tiny_root, download=False)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    # new files on disk (different images): the cache must not serve the old ones
    make_mnist_like(tiny_root, "MNIST", n_train=20, n_test=10, seed=5)
    fresh = bdata.load_split("mnist", "test", tiny_root, download=False)
    assert not torch.equal(fresh.images, first.images)
