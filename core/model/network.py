"""The factorial Gaussian-mixture VAE: a shared residual trunk over all scales, then per scale a categorical
q(y|x) (Gumbel-softmax), a Gaussian q(z|x,y), a prior p(z|y) and a decoder p(x|z).

Inputs are per scale ``(B, C, F_s)`` (C components, F_s feature columns); BatchNorm over the component axis where
the published network has it. The loss is the published one: ``w_rec·SSE + w_gauss·(log q(z|x,y) − log p(z|y))
+ w_cat·KL(q(y|x) ‖ uniform)``, each averaged over scales and the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from unmix.model.config import ModelConfig

EPS_VAR = 1e-8


def _key(scale: int) -> str:
    return f"s{int(scale)}"


class _Residual(nn.Module):
    """h ← h + Lin(F→H) → BN over components → LeakyReLU → Lin(H→F)."""

    def __init__(self, features: int, hidden: int, channels: int, slope: float) -> None:
        super().__init__()
        self.inp = nn.Linear(features, hidden, bias=False)
        self.bn = nn.BatchNorm1d(channels)
        self.act = nn.LeakyReLU(slope)
        self.out = nn.Linear(hidden, features, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.out(self.act(self.bn(self.inp(h))))


def _mlp(width_in: int, width: int, n: int, slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Linear(width_in if i == 0 else width, width, bias=False), nn.BatchNorm1d(width),
                   nn.LeakyReLU(slope)]
    return nn.Sequential(*layers)


class _ComponentEncoder(nn.Module):
    """Lin(F→H) → BN over components → LeakyReLU → flatten → Lin(C·H→H) → BN → LeakyReLU → (layers−1) × MLP."""

    def __init__(self, features: int, channels: int, hidden: int, layers: int, slope: float) -> None:
        super().__init__()
        self.inp = nn.Linear(features, hidden, bias=False)
        self.bn = nn.BatchNorm1d(channels)
        self.act = nn.LeakyReLU(slope)
        self.body = _mlp(channels * hidden, hidden, layers, slope)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.body(self.act(self.bn(self.inp(h))).flatten(1))


class _ScaleHead(nn.Module):
    """Everything that belongs to one scale: q(y|x), q(z|x,y), p(z|y), p(x|z)."""

    def __init__(self, features: int, channels: int, cfg: ModelConfig) -> None:
        super().__init__()
        H, L, K, Z, C, a = cfg.hidden, cfg.layers, cfg.clusters, cfg.latent, channels, cfg.negative_slope
        self.channels, self.features = C, features
        self.qy = _ComponentEncoder(features, C, H, L, a)
        self.logits = nn.Linear(H, K)
        self.qz = _ComponentEncoder(features + K, C, H, L, a)
        self.mu = nn.Linear(H, Z, bias=False)
        self.var = nn.Linear(H, Z, bias=False)
        self.prior_mu = nn.Linear(K, Z)
        self.prior_var = nn.Linear(K, Z)
        dec: list[nn.Module] = [nn.Linear(Z, H, bias=False), nn.BatchNorm1d(H), nn.LeakyReLU(a)]
        dec += list(_mlp(H, C * H, L, a))
        self.decoder = nn.Sequential(*dec)
        self.out = nn.Linear(H, features)

    def encode_z(self, h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        yy = y[:, None, :].expand(-1, h.shape[1], -1)
        e = self.qz(torch.cat([h, yy], dim=-1))
        return self.mu(e), F.softplus(self.var(e))

    def prior(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prior_mu(y), F.softplus(self.prior_var(y)) + 1.0

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        d = self.decoder(z).reshape(z.shape[0], self.channels, -1)
        return self.out(d)


def _log_normal(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    var = var + EPS_VAR
    return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x - mu) ** 2 / var).sum(-1)


class FactorialVAE(nn.Module):
    """The network; ``features`` maps each scale to its number of feature columns per component."""

    def __init__(self, config: ModelConfig, features: dict[int, int], channels: int) -> None:
        super().__init__()
        self.config = config
        self.scales: tuple[int, ...] = tuple(sorted(int(s) for s in features))
        self.features = {int(s): int(features[s]) for s in self.scales}
        self.channels = int(channels)
        total = sum(self.features.values())
        self.trunk = nn.ModuleList(_Residual(total, config.hidden, channels, config.negative_slope)
                                   for _ in range(config.layers))
        self.heads = nn.ModuleDict({_key(s): _ScaleHead(self.features[s], channels, config) for s in self.scales})

    def shared(self, x: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """The common trunk over concatenated scales, split back per scale."""
        h = torch.cat([x[s] for s in self.scales], dim=-1)
        for block in self.trunk:
            h = block(h)
        parts = torch.split(h, [self.features[s] for s in self.scales], dim=-1)
        return dict(zip(self.scales, parts, strict=True))

    def forward(self, x: dict[int, torch.Tensor], temperature: float) -> dict[int, dict[str, torch.Tensor]]:
        """Training pass: relaxed Gumbel-softmax sample of y, reparameterised z, reconstruction, per scale."""
        out = {}
        for s, h in self.shared(x).items():
            head = self.heads[_key(s)]
            logits = head.logits(head.qy(h))
            u = torch.rand_like(logits)
            g = -torch.log(-torch.log(u + 1e-20) + 1e-20)
            y = F.softmax((logits + g) / temperature, dim=-1)
            mu, var = head.encode_z(h, y)
            z = mu + torch.sqrt(var + 1e-10) * torch.randn_like(mu)
            pmu, pvar = head.prior(y)
            out[s] = {"logits": logits, "y": y, "mu": mu, "var": var, "z": z, "prior_mu": pmu, "prior_var": pvar,
                      "recon": head.decode(z)}
        return out

    def loss(self, x: dict[int, torch.Tensor], out: dict[int, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Published loss terms (each a mean over scales of batch means) and the weighted total."""
        cfg = self.config
        rec = gauss = cat = 0.0
        K = cfg.clusters
        for s in self.scales:
            o = out[s]
            rec = rec + ((x[s] - o["recon"]) ** 2).flatten(1).sum(-1).mean()
            gauss = gauss + (_log_normal(o["z"], o["mu"], o["var"])
                             - _log_normal(o["z"], o["prior_mu"], o["prior_var"])).mean()
            logq = F.log_softmax(o["logits"], dim=-1)
            cat = cat + (logq.exp() * logq).sum(-1).mean() + math.log(K)
        n = len(self.scales)
        rec, gauss, cat = rec / n, gauss / n, cat / n
        total = cfg.w_rec * rec + cfg.w_gauss * gauss + cfg.w_cat * cat
        return {"loss": total, "rec": rec, "gauss": gauss, "cat": cat}

    @torch.no_grad()
    def infer(self, x: dict[int, torch.Tensor],
              prob: dict[int, torch.Tensor] | None = None) -> dict[int, dict[str, torch.Tensor]]:
        """Deterministic inference: posterior probabilities and the latent mean conditioned on them.

        ``prob`` (per scale, optional) replaces the network's own posteriors, e.g. by an ensemble's consensus.
        """
        out = {}
        for s, h in self.shared(x).items():
            head = self.heads[_key(s)]
            p = F.softmax(head.logits(head.qy(h)), dim=-1) if prob is None else prob[s]
            mu, _ = head.encode_z(h, p)
            out[s] = {"prob": p, "latent": mu}
        return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_network(config: ModelConfig, features: dict[int, int] | Sequence[int], channels: int = 3,
                  device: str | torch.device = "cpu") -> FactorialVAE:
    """Construct the network (``device='meta'`` builds it without allocating weights, e.g. to count them)."""
    if not isinstance(features, dict):
        features = dict(features)
    with torch.device(device):
        return FactorialVAE(config, features, channels)
