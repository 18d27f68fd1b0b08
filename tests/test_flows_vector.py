"""Math of the vector flows: bijectivity, log-determinants, normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from galaxysim.flows.base import Standardization, standard_normal_log_prob
from galaxysim.flows.vector import VECTOR_FLOWS, VectorFlow, zuko_flow


def _perturbed_flow(n_features: int, flow: str, seed: int = 0) -> VectorFlow:
    """A float64 flow whose weights are moved away from the near-identity initialisation."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    loc = torch.randn(n_features, generator=generator)
    scale = torch.rand(n_features, generator=generator) + 0.5
    net = VectorFlow(
        n_features, flow=flow, n_layers=3, hidden_features=(8, 8), loc=loc, scale=scale
    )
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return net.double()


def test_standard_normal_log_prob_matches_torch():
    z = torch.randn(5, 3, dtype=torch.float64)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(dim=1)
    torch.testing.assert_close(standard_normal_log_prob(z), expected)


def test_standardization_is_affine_with_its_log_det():
    standardization = Standardization(torch.tensor([1.0, -2.0]), torch.tensor([2.0, 0.5]))
    x = torch.tensor([[3.0, -1.0]])
    u, log_det = standardization(x)
    torch.testing.assert_close(u, torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(log_det, torch.tensor([-math.log(2.0) - math.log(0.5)]))
    torch.testing.assert_close(standardization.inverse(u), x)


@pytest.mark.parametrize("flow", VECTOR_FLOWS)
def test_latent_then_inverse_round_trips(flow):
    net = _perturbed_flow(5, flow)
    x = 2.0 * torch.randn(64, 5, dtype=torch.float64)
    z, _ = net.latent(x)
    assert not torch.allclose(z, x, atol=1e-2)  # the flow is not the identity
    torch.testing.assert_close(net.inverse(z), x, atol=1e-4, rtol=0)


@pytest.mark.parametrize("flow", VECTOR_FLOWS)
def test_log_det_matches_brute_force_jacobian(flow):
    net = _perturbed_flow(3, flow, seed=1)
    x = torch.randn(4, 3, dtype=torch.float64)
    _, log_det = net.latent(x)
    for i in range(x.shape[0]):
        jacobian = torch.autograd.functional.jacobian(lambda v: net.latent(v[None])[0][0], x[i])
        expected = torch.linalg.slogdet(jacobian).logabsdet
        torch.testing.assert_close(log_det[i], expected, atol=1e-8, rtol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("flow", VECTOR_FLOWS)
def test_density_integrates_to_one_in_two_dimensions(flow):
    net = _perturbed_flow(2, flow, seed=2)
    # The perturbed flows have heavy-ish tails; a wide, coarse grid holds their mass.
    side = torch.linspace(-20.0, 20.0, 401, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        density = net.log_prob(grid).exp().reshape(side.numel(), side.numel())
    step = float(side[1] - side[0])
    total = float(density.sum()) * step * step
    assert total == pytest.approx(1.0, abs=0.01)


def test_unknown_flow_name_is_a_value_error():
    with pytest.raises(ValueError, match="flow must be one of"):
        VectorFlow(3, flow="planar")


def test_zuko_flow_builds_each_kind():
    for flow in VECTOR_FLOWS:
        assert zuko_flow(3, flow, 2, (8,))().sample((5,)).shape == (5, 3)


# ------------------------------------------------------------------ data model


def test_vector_data_model_is_the_identity_on_continuous_data():
    net = VectorFlow(3, flow="affine", n_layers=2, hidden_features=(8,))
    data = np.random.default_rng(0).normal(size=(6, 3))
    tensor = net.training_tensor(data)
    assert tensor.dtype == torch.float32 and net.dtype == torch.float32
    assert net.augmentation is None
    torch.testing.assert_close(net.training_loss((tensor,)), -net.log_prob(tensor).mean())
    net = net.for_inference()
    assert net.dtype == torch.float64 and not net.training
    x = torch.tensor(data)
    torch.testing.assert_close(net.log_likelihood(x), net.log_prob(x))
    z = net.to_latent(x)
    torch.testing.assert_close(z, net.latent(x)[0])
    torch.testing.assert_close(net.from_latent(z), x)
    torch.testing.assert_close(net.sample_from_latent(z), net.inverse(z))
