"""Tests of galaxysim.embedders.dihedral_network and ContrastiveEmbedder(encoder="dihedral")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxysim import load_model, save_model
from galaxysim.embedders import ContrastiveEmbedder, ContrastiveEncoder
from galaxysim.embedders.dihedral_network import DihedralEncoder, GroupConv2d, dihedral_cayley_table
from galaxysim.symmetry import dihedral_index_maps

TINY = dict(
    encoder="dihedral",
    n_components=8,
    n_stages=2,
    base_channels=8,
    projection_dim=8,
    max_epochs=2,
    batch_size=16,
    device="cpu",
)


def _apply(images: torch.Tensor, element: int) -> torch.Tensor:
    """Symmetry ``element`` (in dihedral_index_maps order) applied to the last two axes."""
    size = images.shape[-1]
    index_map = dihedral_index_maps(size, size)[element]
    return images.flatten(-2)[..., index_map].reshape(images.shape)


def test_cayley_table_is_a_group_table():
    table = np.array(dihedral_cayley_table())
    assert table.shape == (8, 8)
    # Every row and column is a permutation (Latin square), 0 is the identity.
    for k in range(8):
        assert sorted(table[k]) == list(range(8)) and sorted(table[:, k]) == list(range(8))
    assert list(table[0]) == list(range(8)) and list(table[:, 0]) == list(range(8))
    # Associativity, and it agrees with composing the pixel maps.
    for a in range(8):
        for b in range(8):
            for c in range(8):
                assert table[table[a][b]][c] == table[a][table[b][c]]
    x = torch.rand(1, 1, 5, 5)
    for a in range(8):
        for b in range(8):
            assert torch.equal(_apply(_apply(x, b), a), _apply(x, int(table[a][b])))
    # The group is not commutative (a quarter turn and a mirror do not commute).
    assert not np.array_equal(table, table.T)


@pytest.mark.parametrize("lifting", [True, False])
def test_group_convolution_is_equivariant(lifting):
    torch.manual_seed(0)
    conv = GroupConv2d(2, 3, lifting=lifting)
    shape = (2, 2, 9, 9) if lifting else (2, 2, 8, 9, 9)
    x = torch.rand(*shape)
    y = conv(x)
    assert y.shape == (2, 3, 8, 9, 9)
    table = dihedral_cayley_table()
    for element in range(8):
        if lifting:
            moved = _apply(x, element)
        else:  # the copies of the input move too: copy h goes to element * h
            moved = torch.empty_like(x)
            for h in range(8):
                moved[:, :, table[element][h]] = _apply(x[:, :, h], element)
        out = conv(moved)
        for g in range(8):
            expected = _apply(y[:, :, g], element)
            assert torch.allclose(out[:, :, table[element][g]], expected, atol=1e-5)


def test_group_convolution_rejects_an_even_kernel():
    with pytest.raises(ValueError, match="kernel_size"):
        GroupConv2d(1, 1, kernel_size=2)


def test_encoder_embedding_is_invariant_to_all_eight_symmetries():
    torch.manual_seed(0)
    net = DihedralEncoder(3, n_components=16, n_stages=3, base_channels=16).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        reference = net(x)
        for element in range(8):
            assert torch.allclose(net(_apply(x, element)), reference, atol=1e-5)
        # ... and not to everything: a shifted image has another embedding.
        assert not torch.allclose(net(x.roll(5, dims=-1)), reference, atol=1e-3)
    assert reference.shape == (3, 16)


def test_encoder_has_fewer_weights_than_the_plain_one_of_the_same_widths():
    plain = sum(p.numel() for p in ContrastiveEncoder(3).parameters())
    dihedral = sum(p.numel() for p in DihedralEncoder(3).parameters())
    assert dihedral < plain / 3


@pytest.mark.slow
def test_embedder_with_the_dihedral_encoder_is_invariant_and_persists(tmp_path):
    rng = np.random.default_rng(0)
    images = np.repeat(np.repeat(rng.random((24, 4, 4, 3)), 4, 1), 4, 2).astype(np.float32)
    embedder = ContrastiveEmbedder(**TINY, random_state=0).fit(images)
    assert isinstance(embedder.network_, DihedralEncoder)
    Z = embedder.transform(images)
    turned = np.rot90(images, 1, axes=(1, 2))
    mirrored = images[:, :, ::-1]
    np.testing.assert_allclose(embedder.transform(turned), Z, atol=1e-4)
    np.testing.assert_allclose(embedder.transform(mirrored), Z, atol=1e-4)
    path = save_model(embedder, tmp_path / "dihedral.safetensors")
    loaded = load_model(path)
    assert loaded.encoder == "dihedral"
    np.testing.assert_array_equal(loaded.transform(images), Z)


def test_unknown_encoder_is_named():
    with pytest.raises(ValueError, match="encoder"):
        ContrastiveEmbedder(encoder="resnet").fit(np.zeros((4, 8, 8, 3)))


def test_inference_reuses_the_filter_bank_until_the_weights_change():
    torch.manual_seed(0)
    conv = GroupConv2d(3, 4, lifting=True)
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        first = conv(x)
        bank = conv._cached_bank[1]
        again = conv(x)
        assert conv._cached_bank[1] is bank  # built once for these weights
    # The same numbers as building the bank at every call (the training path).
    assert torch.equal(first, again) and torch.equal(first, conv(x).detach())
    optimizer = torch.optim.SGD(conv.parameters(), lr=0.1)
    conv(x).sum().backward()
    optimizer.step()
    with torch.no_grad():
        stepped = conv(x)
    assert not torch.equal(stepped, first)
    assert torch.equal(stepped, conv(x).detach())  # rebuilt after the optimiser step
    with torch.no_grad():
        conv.weight.mul_(0)  # an in-place change of the weights
        assert torch.count_nonzero(conv(x)) == 0
    other = GroupConv2d(3, 4, lifting=True)
    with torch.no_grad():
        other(x)
        other.load_state_dict(conv.state_dict())
        assert torch.count_nonzero(other(x)) == 0  # rebuilt after load_state_dict
